package graph_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// BenchmarkJournalEtcd: the same graph run (800 no-op node-roles: 200
// nodes × a chain of four roles, parallelism 16) journaled in bbolt, in
// one real etcd member (on the same disk), and in etcd with a Controller
// (every node-role claimed under a lease, every record fenced). The run is
// all journal: roles do nothing. Metrics: ms per run for each, and the
// ratios etcd/bolt and etcd-controller/bolt.
func BenchmarkJournalEtcd(b *testing.B) {
	c := etcdtest.Start(b, etcdtest.Options{})
	dir := b.TempDir()
	const nodes = 200
	runOn := func(st store.Store, ctl *graph.Controller) time.Duration {
		ctx := context.Background()
		start := time.Now()
		p, err := graph.NewPlan(ctx, chainDeployment("bench", nodes, spread(0, 0), sleepRun), st)
		if err != nil {
			b.Fatal(err)
		}
		res, err := graph.Apply(ctx, p, graph.Options{Parallelism: 16, Controller: ctl})
		if err != nil {
			b.Fatal(err)
		}
		if n := res.Count(graph.StateSucceeded); n != 4*nodes {
			b.Fatalf("%d of %d succeeded", n, 4*nodes)
		}
		return time.Since(start)
	}
	var boltT, etcdT, ctlT time.Duration
	for i := range b.N {
		bs, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("state%d.db", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		boltT += runOn(bs, nil)
		bs.Close()
		for _, ctl := range []*graph.Controller{nil, {Name: "bench", TTL: 3 * time.Second}} {
			es, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: c.Endpoints(), Prefix: fmt.Sprintf("bench/%d/%v/", i, ctl != nil)})
			if err != nil {
				b.Fatal(err)
			}
			if ctl == nil {
				etcdT += runOn(es, nil)
			} else {
				ctlT += runOn(es, ctl)
			}
			es.Close()
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(ms(boltT), "bolt-ms/run")
	b.ReportMetric(ms(etcdT), "etcd-ms/run")
	b.ReportMetric(ms(ctlT), "etcd-ctl-ms/run")
	b.ReportMetric(float64(etcdT)/float64(boltT), "etcd/bolt")
	b.ReportMetric(float64(ctlT)/float64(boltT), "etcd-ctl/bolt")
}
