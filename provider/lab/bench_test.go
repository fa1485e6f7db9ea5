package lab

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/masonops/mason/provider"
)

// BenchmarkLabCreate measures creating 10 lab nodes until every one is
// ready (running, addressed, transport answering), created 10 at a time as
// an executor would, and reports the time per node. Deleting them is not
// timed.
func BenchmarkLabCreate(b *testing.B) {
	const n = 10
	l := openLab(b, Options{})
	p := l.Provider()
	ctx := context.Background()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		began := time.Now()
		var g errgroup.Group
		for j := range n {
			g.Go(func() error {
				id := fmt.Sprintf("b%d-%d", i, j)
				if _, err := p.Create(ctx, provider.NodeSpec{ID: id}); err != nil {
					return err
				}
				_, err := p.WaitReady(ctx, id)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(began)
		b.StopTimer()
		for j := range n {
			if err := p.Delete(ctx, fmt.Sprintf("b%d-%d", i, j)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N*n), "ms/node")
}
