package authdns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// forwarder relays questions outside the server's zones to upstream
// resolvers the user named. It is off unless Options.Forward is set, and
// then serves only the clients in Options.ForwardClients, so the server is
// never an open resolver by accident.
type forwarder struct {
	upstreams []string
	clients   []netip.Prefix
	timeout   time.Duration
	// inflight runs the UDP path's forwarded queries aside, at most
	// maxInflight at once; Close waits for them.
	inflight errgroup.Group
}

// maxInflight bounds the forwarded UDP queries waiting on upstreams.
const maxInflight = 256

func newForwarder(o Options) (*forwarder, error) {
	if len(o.Forward) == 0 {
		return nil, nil
	}
	for _, u := range o.Forward {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return nil, fmt.Errorf("authdns: upstream resolver %q is not host:port: %w", u, err)
		}
	}
	clients := o.ForwardClients
	if len(clients) == 0 {
		clients = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	f := &forwarder{upstreams: o.Forward, clients: clients, timeout: 2 * time.Second}
	f.inflight.SetLimit(maxInflight)
	return f, nil
}

// wants reports whether req, from client, is to be forwarded: recursion
// desired, a name outside the server's zones, a client allowed to recurse.
func (f *forwarder) wants(s *Server, req *dns.Msg, client netip.Addr) bool {
	if f == nil || !req.RecursionDesired || req.Response || req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		return false
	}
	if q := req.Question[0]; q.Qclass != dns.ClassINET || q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR || s.findZone(q.Name) != nil {
		return false
	}
	client = client.Unmap()
	for _, p := range f.clients {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// exchange asks the upstreams in turn; nil means none answered (the
// caller answers SERVFAIL).
func (f *forwarder) exchange(req *dns.Msg, tcp bool) *dns.Msg {
	q := req.Copy()
	q.Id = dns.Id()
	netw := "udp"
	if tcp {
		netw = "tcp"
	}
	for _, u := range f.upstreams {
		c := &dns.Client{Net: netw, Timeout: f.timeout, UDPSize: 4096}
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		r, _, err := c.ExchangeContext(ctx, q, u)
		if err == nil && r.Truncated && !tcp {
			c.Net = "tcp"
			r, _, err = c.ExchangeContext(ctx, q, u)
		}
		cancel()
		if err == nil && r != nil && r.Rcode != dns.RcodeServerFailure {
			r.Id = req.Id
			r.RecursionAvailable = true
			return r
		}
	}
	return nil
}

// forward answers req through the upstreams, SERVFAIL when none answered.
func (s *Server) forward(req *dns.Msg, tcp bool) *dns.Msg {
	r := s.fwd.exchange(req, tcp)
	if r == nil {
		r = new(dns.Msg)
		r.SetRcode(req, dns.RcodeServerFailure)
		r.RecursionAvailable = true
	}
	if !tcp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = min(int(opt.UDPSize()), 4096)
		}
		r.Truncate(size)
	}
	return r
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr()
	case *net.TCPAddr:
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}
