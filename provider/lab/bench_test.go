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

// BenchmarkExecBackground runs a command that leaves a daemon holding its
// output (`sleep 60 &`, no redirection) and reports its time as a ratio
// to running `true`, measured in the same run: about 1 when Run returns as
// the command exits, far above when it waits for the daemon's output to
// close.
func BenchmarkExecBackground(b *testing.B) {
	l := openLab(b, Options{})
	ctx := context.Background()
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "bg"})
	if err != nil {
		b.Fatal(err)
	}
	timeOf := func(args ...string) time.Duration {
		began := time.Now()
		res, err := n.Transport.Run(ctx, provider.Command{Args: args})
		if err != nil || res.ExitCode != 0 {
			b.Fatal(err, res.ExitCode)
		}
		return time.Since(began)
	}
	var plain, background time.Duration
	for b.Loop() {
		plain += timeOf("sh", "-c", "true")
		background += timeOf("sh", "-c", "sleep 60 &")
	}
	b.ReportMetric(float64(background)/float64(plain), "background/plain")
	b.ReportMetric(float64(background.Milliseconds())/float64(b.N), "ms/background-exec")
}
