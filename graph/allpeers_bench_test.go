package graph

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/bolt"
)

// Output types of the all-peers benchmark's roles.
type (
	peerAddr  struct{ Addr string }
	peerView  struct{ Peers int }
	peerTotal struct{ Members int }
)

// allPeersDeployment is issue 20's shape: on each of nodes nodes a role
// "addr" with an output, a role "view" that takes role.All of every node's
// addr (as etcd's member list, Kubernetes' pod routes or /etc/hosts do),
// and one cluster aggregate "total" over the same outputs.
func allPeersDeployment(nodes int) *Deployment {
	addr := role.Func(role.Meta{Name: "addr"}, func(ctx context.Context, rc *role.Context, _ struct{}) (peerAddr, error) {
		return peerAddr{Addr: "10.0." + rc.Node().Name}, nil
	})
	view := role.Func(role.Meta{Name: "view"}, func(ctx context.Context, rc *role.Context, in struct {
		Peers role.All[peerAddr]
	}) (peerView, error) {
		return peerView{Peers: len(in.Peers)}, nil
	})
	total := role.Func(role.Meta{Name: "total", Scope: role.ScopeCluster}, func(ctx context.Context, rc *role.Context, in struct {
		Peers role.All[peerAddr]
	}) (peerTotal, error) {
		return peerTotal{Members: len(in.Peers)}, nil
	})
	d := NewDeployment("allpeers")
	p := d.Pool("all")
	for i := range nodes {
		p.Add(&provider.Node{Name: fmt.Sprintf("n%05d", i)})
	}
	d.Bind(p, role.Of(addr), role.Of(view), role.Of(total))
	return d
}

// heapPeak samples the live heap while it runs (the collector's view:
// objects in use), every few milliseconds, and keeps the largest.
type heapPeak struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > h.peak {
			h.peak = v
		}
	}
	read()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return h
}

func (h *heapPeak) done() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak
}

// resetPeakRSS resets the kernel's high-water mark of this process's
// resident set (Linux: writing 5 to clear_refs); peakRSS reads it.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkAllPeers: issue 20's all-peers shape on bbolt at 2,000 and
// 10,000 nodes (3 node-roles per node, but one aggregate): the first plan
// and apply on an empty state, a converged re-plan (and applying it, which
// runs nothing), then adding one node (plan + apply: every view re-runs
// with one more peer). Metrics: seconds of each step, state bytes per
// node-role, the peak live heap and the peak RSS of the process over the
// whole sequence; and the CPU seconds of each step (the whole process's,
// collector included: steadier than wall time on a shared machine).
//
//	go test ./graph -run '^$' -bench 'AllPeers' -benchtime 1x -timeout 30m
func BenchmarkAllPeers(b *testing.B) {
	for _, nodes := range []int{2000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var m allPeersMetrics
			for i := range b.N {
				m.add(runAllPeers(b, nodes, filepath.Join(b.TempDir(), fmt.Sprintf("state%d.db", i))))
			}
			m.report(b, float64(b.N))
		})
	}
}

type allPeersMetrics struct {
	plan, apply, replan, noop, add1 float64 // seconds
	planCPU, applyCPU, replanCPU    float64 // CPU seconds of the process
	add1CPU                         float64
	stateBytes, heap, rss           float64
	dataBytes                       float64 // keys and values in the store
	nodeRoles                       float64
}

func (m *allPeersMetrics) add(o allPeersMetrics) {
	m.plan += o.plan
	m.apply += o.apply
	m.replan += o.replan
	m.noop += o.noop
	m.add1 += o.add1
	m.planCPU += o.planCPU
	m.applyCPU += o.applyCPU
	m.replanCPU += o.replanCPU
	m.add1CPU += o.add1CPU
	m.stateBytes += o.stateBytes
	m.dataBytes += o.dataBytes
	m.heap = max(m.heap, o.heap)
	m.rss = max(m.rss, o.rss)
	m.nodeRoles = o.nodeRoles
}

func (m *allPeersMetrics) report(b *testing.B, n float64) {
	b.ReportMetric(m.plan/n, "plan-s")
	b.ReportMetric(m.apply/n, "apply-s")
	b.ReportMetric(m.replan/n, "replan-s")
	b.ReportMetric(m.noop/n, "noop-apply-s")
	b.ReportMetric(m.add1/n, "add1-s")
	b.ReportMetric(m.planCPU/n, "plan-cpu-s")
	b.ReportMetric(m.applyCPU/n, "apply-cpu-s")
	b.ReportMetric(m.replanCPU/n, "replan-cpu-s")
	b.ReportMetric(m.add1CPU/n, "add1-cpu-s")
	b.ReportMetric(m.stateBytes/n/m.nodeRoles, "state-B/noderole")
	// The file grows in steps (bbolt doubles it up to 1 GiB), so its size
	// per node-role jumps between node counts; what is stored does not.
	b.ReportMetric(m.dataBytes/n/m.nodeRoles, "data-B/noderole")
	b.ReportMetric(m.heap/(1<<20), "peak-heap-MiB")
	b.ReportMetric(m.rss/(1<<20), "peak-rss-MiB")
	b.ReportMetric(0, "ns/op") // the sequence's total time says nothing
}

// runAllPeers runs the sequence once on a bbolt file at path.
func runAllPeers(b *testing.B, nodes int, path string) allPeersMetrics {
	ctx := context.Background()
	runtime.GC()
	resetPeakRSS()
	hp := startHeapPeak()
	st, err := bolt.Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var m allPeersMetrics
	var cpu [2]float64 // of the last step's plan and apply
	step := func(d *Deployment, wantRun int) (planS, applyS float64) {
		t0, c0 := time.Now(), cpuTime()
		p, err := NewPlan(ctx, d, st)
		if err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), cpuTime()
		res, err := Apply(ctx, p, Options{Parallelism: 16})
		if err != nil {
			b.Fatal(err)
		}
		t2, c2 := time.Now(), cpuTime()
		if got := res.Count(StateSucceeded); got != wantRun {
			b.Fatalf("%d nodes: %d node-roles ran, want %d", nodes, got, wantRun)
		}
		cpu = [2]float64{(c1 - c0).Seconds(), (c2 - c1).Seconds()}
		return t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds()
	}
	m.plan, m.apply = step(allPeersDeployment(nodes), 2*nodes+1)
	m.planCPU, m.applyCPU = cpu[0], cpu[1]
	m.replan, m.noop = step(allPeersDeployment(nodes), 0)
	m.replanCPU = cpu[0]
	// One node more: its addr and view run, and every other view and the
	// total run again with one more peer.
	p1, a1 := step(allPeersDeployment(nodes+1), nodes+3)
	m.nodeRoles = float64(2*(nodes+1) + 1) // in the state file, measured at the end
	m.add1 = p1 + a1
	m.add1CPU = cpu[0] + cpu[1]
	m.heap = float64(hp.done())
	m.rss = float64(peakRSS())
	ents, _, err := st.List(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		m.dataBytes += float64(len(e.Key) + len(e.Value))
	}
	st.Close()
	if fi, err := os.Stat(path); err == nil {
		m.stateBytes = float64(fi.Size())
	}
	return m
}
