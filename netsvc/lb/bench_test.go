package lb

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store/mem"
)

// roundTrips sends n 64-byte messages over one connection to addr and
// reads each echo back.
func roundTrips(b *testing.B, addr string, n int) time.Duration {
	c, err := net.Dial("tcp", addr)
	require.NoError(b, err)
	defer c.Close()
	echo := make([]byte, 64)
	c.SetDeadline(time.Now().Add(time.Minute))
	msg := make([]byte, 64)
	msg[63] = '\n'
	start := time.Now()
	for range n {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, echo); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkProxyRoundTrip measures echo round trips through a frontend and
// straight to the backend, and reports the throughput ratio lb/direct (1.0
// would be a proxy that costs nothing). bench/netsvc.sh compares the
// balancer with HAProxy under wrk.
func BenchmarkProxyRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	bal := newBalancerForBench(b)
	ctx := context.Background()
	require.NoError(b, bal.EnsureFrontend(ctx, netsvc.Frontend{Name: "bench", Listen: "127.0.0.1:0"}))
	require.NoError(b, bal.AddBackend(ctx, "bench", netsvc.Backend{Addr: ln.Addr().String()}))
	st, err := bal.Status(ctx, "bench")
	require.NoError(b, err)

	b.ResetTimer()
	through := roundTrips(b, st.Listen, b.N)
	b.StopTimer()
	direct := roundTrips(b, ln.Addr().String(), b.N)
	b.ReportMetric(direct.Seconds()/through.Seconds(), "lb/direct")
	b.ReportMetric(float64(through.Microseconds())/float64(b.N)-float64(direct.Microseconds())/float64(b.N), "added-us/roundtrip")
}

func newBalancerForBench(b *testing.B) *Balancer {
	st := mem.New()
	b.Cleanup(func() { st.Close() })
	bal, err := New(context.Background(), st, nil)
	require.NoError(b, err)
	b.Cleanup(func() { bal.Close() })
	return bal
}
