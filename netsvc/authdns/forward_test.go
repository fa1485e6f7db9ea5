package authdns

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store/mem"
)

func TestForwardToUpstream(t *testing.T) {
	ctx := context.Background()
	// The "upstream resolver" is another server on loopback, authoritative
	// for upstream.test.
	upStore := mem.New()
	t.Cleanup(func() { upStore.Close() })
	up, err := New(upStore, nil)
	require.NoError(t, err)
	t.Cleanup(func() { up.Close() })
	require.NoError(t, up.AddZone(ctx, Zone{Name: "upstream.test."}))
	require.NoError(t, up.Upsert(ctx, "upstream.test.", netsvc.RecordSet{Name: "www", Type: netsvc.TypeA, Values: []string{"10.99.0.1"}}))
	upAddr, err := up.Listen("127.0.0.1:0")
	require.NoError(t, err)

	// A dead upstream first: the forwarder moves on to the next one.
	dead := "127.0.0.1:1"
	tests := []struct {
		name    string
		clients []netip.Prefix
		rd      bool
		qname   string
		rcode   int
		answers []string
		ra      bool
	}{
		{"forwarded", nil, true, "www.upstream.test.", dns.RcodeSuccess, []string{"10.99.0.1"}, true},
		{"upstream NXDOMAIN relayed", nil, true, "nope.upstream.test.", dns.RcodeNameError, nil, true},
		{"no recursion desired: refused", nil, false, "www.upstream.test.", dns.RcodeRefused, nil, false},
		{"own zone still authoritative", nil, true, "etcd1.lab.example.", dns.RcodeSuccess, []string{"10.78.0.11"}, false},
		{"client not allowed: refused", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, true, "www.upstream.test.", dns.RcodeRefused, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mem.New()
			t.Cleanup(func() { st.Close() })
			s, err := New(st, &Options{Forward: []string{dead, upAddr}, ForwardClients: tt.clients})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			require.NoError(t, s.AddZone(ctx, Zone{Name: zone}))
			require.NoError(t, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "etcd1", Type: netsvc.TypeA, Values: []string{"10.78.0.11"}}))
			s.fwd.timeout = 300 * time.Millisecond
			addr, err := s.Listen("127.0.0.1:0")
			require.NoError(t, err)
			for _, netw := range []string{"udp", "tcp"} {
				m := new(dns.Msg)
				m.SetQuestion(tt.qname, dns.TypeA)
				m.RecursionDesired = tt.rd
				r, _, err := (&dns.Client{Net: netw, Timeout: 3 * time.Second}).Exchange(m, addr)
				require.NoError(t, err, netw)
				require.Equal(t, dns.RcodeToString[tt.rcode], dns.RcodeToString[r.Rcode], netw)
				require.Equal(t, tt.answers, answers(r), netw)
				require.Equal(t, tt.ra, r.RecursionAvailable, netw)
			}
		})
	}
}

func TestForwardBadUpstream(t *testing.T) {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	_, err := New(st, &Options{Forward: []string{"no-port"}})
	require.Error(t, err)
}
