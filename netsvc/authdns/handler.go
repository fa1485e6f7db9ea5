package authdns

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// maxChase bounds CNAME chains followed inside the server's zones.
const maxChase = 8

// ServeDNS answers one query. It implements dns.Handler, so the server can
// also be mounted on a dns.ServeMux or run by a caller's own dns.Server.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	udp := true
	if a := w.LocalAddr(); a != nil {
		_, isTCP := a.(*net.TCPAddr)
		udp = !isTCP
	}
	var resp *dns.Msg
	if s.fwd.wants(s, req, addrOf(w.RemoteAddr())) {
		resp = s.forward(req, !udp)
	} else {
		resp = s.answer(req, udp)
	}
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("authdns: writing reply failed", "err", err)
	}
}

// answer builds the reply to req; nil means "send nothing" (req is itself
// a response). udp limits the reply to the size the client can take.
func (s *Server) answer(req *dns.Msg, udp bool) *dns.Msg {
	if req.Response {
		return nil
	}
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.Compress = true
	if len(req.Question) > 0 {
		m.Question = req.Question[:1]
	}

	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			m.SetEdns0(1232, false)
			m.Rcode = dns.RcodeBadVers
			return m
		}
		if sz := int(opt.UDPSize()); sz > size {
			size = min(sz, 4096)
		}
		defer m.SetEdns0(1232, false)
	}

	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
		return m
	}
	qname := strings.ToLower(q.Name)
	zd := s.findZone(qname)
	if zd == nil {
		// Not ours: refuse rather than recurse.
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	s.resolve(m, zd, qname, q.Qtype)
	if udp {
		m.Truncate(size)
	}
	return m
}

// resolve fills in m's answer and authority for qname in zd, following
// CNAMEs that stay inside the zone.
func (s *Server) resolve(m *dns.Msg, zd *zoneData, qname string, qtype uint16) {
	for range maxChase {
		node, ok := zd.nodes[qname]
		if !ok {
			if !zd.ents[qname] {
				m.Rcode = dns.RcodeNameError
			}
			m.Ns = append(m.Ns, negativeSOA(zd))
			return
		}
		if qtype == dns.TypeANY {
			for _, rrs := range node {
				m.Answer = append(m.Answer, rrs...)
			}
			return
		}
		if rrs, ok := node[qtype]; ok {
			m.Answer = append(m.Answer, rrs...)
			return
		}
		cn, ok := node[dns.TypeCNAME]
		if !ok {
			m.Ns = append(m.Ns, negativeSOA(zd))
			return
		}
		m.Answer = append(m.Answer, cn...)
		target := cn[0].(*dns.CNAME).Target
		if next := s.findZone(target); next != nil {
			zd, qname = next, target
			continue
		}
		return // outside our zones: the client's resolver follows it
	}
}

// negativeSOA is the SOA sent with NXDOMAIN and NODATA answers; its TTL is
// the negative-caching TTL (RFC 2308).
func negativeSOA(zd *zoneData) dns.RR {
	soa := *zd.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return &soa
}

// findZone returns the most specific zone holding name, or nil.
func (s *Server) findZone(name string) *zoneData {
	zones := *s.zones.Load()
	if len(zones) == 0 {
		return nil
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	for {
		if zd, ok := zones[name]; ok {
			return zd
		}
		i := strings.IndexByte(name, '.')
		if i < 0 || i == len(name)-1 {
			if zd, ok := zones["."]; ok {
				return zd
			}
			return nil
		}
		name = name[i+1:]
	}
}
