package authdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// udpGroup serves UDP on a specific address with one SO_REUSEPORT socket
// per CPU and a few reader goroutines per socket, each answering in place:
// no goroutine per packet and no per-packet control messages, which is what
// lets the server keep up with BIND on loopback. It is used only for a
// specific address: bound to a wildcard, replies must leave from the address
// the query came to, which takes the control messages dns.Server handles.
type udpGroup struct {
	conns []*net.UDPConn
	wg    sync.WaitGroup
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// listenUDPGroup binds the sockets; addr's port may be 0 (the first socket
// picks one and the others join it).
func listenUDPGroup(addr string) (*udpGroup, error) {
	n := runtime.GOMAXPROCS(0)
	g := &udpGroup{}
	lc := net.ListenConfig{Control: reusePort}
	for i := range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("authdns: listening on udp %s: %w", addr, err)
		}
		g.conns = append(g.conns, pc.(*net.UDPConn))
		if i == 0 {
			addr = pc.LocalAddr().String()
		}
	}
	return g, nil
}

func (g *udpGroup) port() int { return g.conns[0].LocalAddr().(*net.UDPAddr).Port }

func (g *udpGroup) serve(s *Server) {
	for _, c := range g.conns {
		for range 2 {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				s.udpLoop(c)
			}()
		}
	}
}

func (g *udpGroup) close() {
	for _, c := range g.conns {
		c.Close()
	}
	g.wg.Wait()
}

// udpLoop reads queries from c and answers each before reading the next.
func (s *Server) udpLoop(c *net.UDPConn) {
	in := make([]byte, 65535)
	out := make([]byte, 0, 4096)
	for {
		n, from, err := c.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < 12 {
			continue // shorter than a header: nothing to answer
		}
		req := new(dns.Msg)
		var resp *dns.Msg
		if err := req.Unpack(in[:n]); err != nil {
			// Answer FORMERR to what looks like a query, as dns.Server does.
			var hdr dns.Msg
			if hdr.Unpack(in[:12]) != nil || hdr.Response {
				continue
			}
			resp = &dns.Msg{MsgHdr: dns.MsgHdr{Id: hdr.Id, Response: true, Opcode: hdr.Opcode, Rcode: dns.RcodeFormatError}}
		} else if s.fwd.wants(s, req, from.Addr()) {
			// Forwarding waits on an upstream: do it aside, bounded; with
			// too many in flight, drop the query (the client retries).
			s.fwd.inflight.TryGo(func() error {
				if b, err := s.forward(req, false).Pack(); err == nil {
					_, _ = c.WriteToUDPAddrPort(b, from)
				}
				return nil
			})
			continue
		} else if resp = s.answer(req, true); resp == nil {
			continue
		}
		b, err := resp.PackBuffer(out)
		if err != nil {
			s.log.Debug("authdns: packing reply failed", "err", err)
			continue
		}
		if _, err := c.WriteToUDPAddrPort(b, from); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
		if cap(b) <= 65535 {
			out = b[:0]
		}
	}
}
