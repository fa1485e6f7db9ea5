package authdns

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store/mem"
)

// BenchmarkQueryUDP measures real queries over loopback UDP, one
// outstanding query per parallel client, and reports queries per second.
// bench/netsvc.sh compares the server with BIND under dnsperf.
func BenchmarkQueryUDP(b *testing.B) {
	st := mem.New()
	b.Cleanup(func() { st.Close() })
	s, err := New(st, nil)
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	require.NoError(b, s.AddZone(ctx, Zone{Name: zone}))
	for i := range 200 {
		require.NoError(b, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "host" + strconv.Itoa(i), Type: netsvc.TypeA, Values: []string{"10.78.1." + strconv.Itoa(i)}}))
	}
	addr, err := s.Listen("127.0.0.1:0")
	require.NoError(b, err)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := &dns.Client{Timeout: 2 * time.Second}
		conn, err := c.Dial(addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		i := 0
		for pb.Next() {
			m := new(dns.Msg)
			m.SetQuestion("host"+strconv.Itoa(i%200)+"."+zone, dns.TypeA)
			i++
			r, _, err := c.ExchangeWithConn(m, conn)
			if err != nil || len(r.Answer) != 1 {
				b.Errorf("query failed: %v %v", err, r)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
}
