package authdns

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store/mem"
)

// recorder is a dns.ResponseWriter that keeps what the handler writes.
type recorder struct {
	local net.Addr
	msg   *dns.Msg
}

func (r *recorder) LocalAddr() net.Addr { return r.local }
func (r *recorder) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53000}
}
func (r *recorder) WriteMsg(m *dns.Msg) error { r.msg = m; return nil }
func (r *recorder) Write(b []byte) (int, error) {
	r.msg = new(dns.Msg)
	return len(b), r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

func seedPacket(f *testing.F, name string, qtype uint16, edns bool) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(4096, false)
	}
	b, err := m.Pack()
	require.NoError(f, err)
	f.Add(b, false)
	f.Add(b, true)
}

// FuzzHandler feeds raw packets to the handler the way the server does:
// whatever unpacks must get a reply that packs, echoes the ID and never
// offers recursion, and nothing may panic. The seed corpus runs in go test.
func FuzzHandler(f *testing.F) {
	st := mem.New()
	f.Cleanup(func() { st.Close() })
	s, err := New(st, nil)
	require.NoError(f, err)
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	require.NoError(f, s.AddZone(ctx, Zone{Name: zone}))
	require.NoError(f, s.AddZone(ctx, Zone{Name: "0.78.10.in-addr.arpa."}))
	require.NoError(f, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "a", Type: netsvc.TypeA, Values: []string{"10.78.0.1"}}))
	require.NoError(f, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "loop1", Type: netsvc.TypeCNAME, Values: []string{"loop2"}}))
	require.NoError(f, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "loop2", Type: netsvc.TypeCNAME, Values: []string{"loop1"}}))
	require.NoError(f, s.Upsert(ctx, "0.78.10.in-addr.arpa.", netsvc.RecordSet{Name: "1", Type: netsvc.TypePTR, Values: []string{"a.lab.example."}}))

	seedPacket(f, "a.lab.example.", dns.TypeA, false)
	seedPacket(f, "a.lab.example.", dns.TypeANY, true)
	seedPacket(f, "loop1.lab.example.", dns.TypeA, false)
	seedPacket(f, "1.0.78.10.in-addr.arpa.", dns.TypePTR, true)
	seedPacket(f, "nope.lab.example.", dns.TypeTXT, false)
	seedPacket(f, "example.com.", dns.TypeA, false)
	seedPacket(f, ".", dns.TypeNS, false)
	f.Add([]byte{}, false)
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}, false) // a response header
	f.Add([]byte{0, 1, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true)  // UPDATE opcode, no question
	f.Add([]byte{0, 2, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1}, false)

	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(raw); err != nil {
			return // the server drops what does not unpack
		}
		var local net.Addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
		if tcp {
			local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
		}
		w := &recorder{local: local}
		s.ServeDNS(w, req)
		if req.Response {
			require.Nil(t, w.msg, "responses are never answered")
			return
		}
		require.NotNil(t, w.msg)
		require.Equal(t, req.Id, w.msg.Id)
		require.True(t, w.msg.Response)
		require.False(t, w.msg.RecursionAvailable)
		out, err := w.msg.Pack()
		require.NoError(t, err)
		if !tcp {
			limit := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
				limit = min(int(opt.UDPSize()), 4096)
			}
			require.LessOrEqual(t, len(out), limit)
		}
	})
}
