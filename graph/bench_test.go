package graph

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

// Output types of the benchmark's no-op roles.
type (
	benchA   struct{ N int }
	benchB   struct{ N int }
	benchC   struct{ N int }
	benchAgg struct{ N int }
	benchD   struct{ N int }
	benchE   struct{ N int }
)

// overheadDeployment is 2,000 nodes × 5 no-op roles and one cluster
// aggregate: on every node a → b → c (Same), an aggregate over every a
// (All, cluster scope, like an etcd cluster waiting for every member's
// URL), then d (needs the aggregate's One and c) → e. 10,001 node-roles.
func overheadDeployment(nodes int) *Deployment {
	noop := func(rc *role.Context) int { return rc.Attempt() }
	a := role.Func(role.Meta{Name: "a"}, func(ctx context.Context, rc *role.Context, _ struct{}) (benchA, error) {
		return benchA{noop(rc)}, nil
	})
	b := role.Func(role.Meta{Name: "b"}, func(ctx context.Context, rc *role.Context, in struct{ A role.Same[benchA] }) (benchB, error) {
		return benchB{in.A.Value.N}, nil
	})
	c := role.Func(role.Meta{Name: "c"}, func(ctx context.Context, rc *role.Context, in struct{ B role.Same[benchB] }) (benchC, error) {
		return benchC{in.B.Value.N}, nil
	})
	agg := role.Func(role.Meta{Name: "agg", Scope: role.ScopeCluster}, func(ctx context.Context, rc *role.Context, in struct{ All role.All[benchA] }) (benchAgg, error) {
		return benchAgg{len(in.All)}, nil
	})
	d := role.Func(role.Meta{Name: "d"}, func(ctx context.Context, rc *role.Context, in struct {
		Agg role.One[benchAgg]
		C   role.Same[benchC]
	}) (benchD, error) {
		return benchD{in.Agg.Value.N}, nil
	})
	e := role.Func(role.Meta{Name: "e"}, func(ctx context.Context, rc *role.Context, in struct{ D role.Same[benchD] }) (benchE, error) {
		return benchE{in.D.Value.N}, nil
	})
	dep := NewDeployment("overhead")
	p := dep.Pool("all")
	for i := range nodes {
		p.Add(&provider.Node{Name: fmt.Sprintf("n%04d", i)})
	}
	dep.Bind(p, role.Of(a), role.Of(b), role.Of(c), role.Of(agg), role.Of(d), role.Of(e))
	return dep
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runOverhead plans and applies the overhead deployment on st and returns
// the wall time taken per node-role.
func runOverhead(b *testing.B, st store.Store) float64 {
	start := time.Now()
	d := overheadDeployment(2000)
	p, err := NewPlan(context.Background(), d, st)
	if err != nil {
		b.Fatal(err)
	}
	res, err := Apply(context.Background(), p, Options{Parallelism: 16})
	if err != nil {
		b.Fatal(err)
	}
	if n := res.Count(StateSucceeded); n != len(p.Steps) {
		b.Fatalf("%d of %d succeeded", n, len(p.Steps))
	}
	return float64(time.Since(start).Nanoseconds()) / float64(len(p.Steps))
}

// BenchmarkExecutorOverhead: plan + run of 10,001 no-op node-roles on the
// in-memory store; metrics ns/noderole (wall time, target ≤ 2,000) and
// cpu-ns/noderole (CPU time of the whole process, steadier than wall time
// on a shared machine; target ≤ 4,000), and the same two for a bare
// in-degree scheduler over the same graph in the same run (bareSchedule:
// a worker pool fed through channels, no plan, binding, digest or
// journal), with their ratios x-bare and cpu-x-bare (goal ≤ 10); and the
// ratios to a bare scheduler that hands out work as the executor does,
// under one lock (bareSharedSchedule: x-bare-shared, cpu-x-bare-shared).
func BenchmarkExecutorOverhead(b *testing.B) {
	g, err := build(overheadDeployment(2000))
	if err != nil {
		b.Fatal(err)
	}
	// The bare schedulers' graph is kept as flat arrays, not as the dag:
	// a second dag of 10,001 node-roles left live would be marked by
	// every collection during our timed part, a cost of the harness.
	edges := edgesOf(g)
	nrs := float64(len(g.nrs))
	g = nil
	var total, bare, shared float64
	var cpu, bareCPU, sharedCPU time.Duration
	// Each timed part starts on a collected heap, so that none pays for
	// the garbage of another (the bare schedulers make almost none, and
	// their figures moved most with the collector).
	timed := func(f func() float64) (float64, time.Duration) {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		c := cpuTime()
		w := f()
		return w, cpuTime() - c
	}
	for range b.N {
		st := mem.New()
		w, c := timed(func() float64 { return runOverhead(b, st) })
		total, cpu = total+w, cpu+c
		w, c = timed(func() float64 { return bareSchedule(edges, 16) })
		bare, bareCPU = bare+w, bareCPU+c
		w, c = timed(func() float64 { return bareSharedSchedule(edges, 16) })
		shared, sharedCPU = shared+w, sharedCPU+c
		st.Close()
	}
	n := float64(b.N)
	b.ReportMetric(total/n, "ns/noderole")
	b.ReportMetric(float64(cpu)/n/nrs, "cpu-ns/noderole")
	b.ReportMetric(bare/n, "bare-ns/noderole")
	b.ReportMetric(float64(bareCPU)/n/nrs, "bare-cpu-ns/noderole")
	b.ReportMetric(total/bare, "x-bare")
	b.ReportMetric(float64(cpu)/float64(bareCPU), "cpu-x-bare")
	b.ReportMetric(shared/n, "bare-shared-ns/noderole")
	b.ReportMetric(total/shared, "x-bare-shared")
	b.ReportMetric(float64(cpu)/float64(sharedCPU), "cpu-x-bare-shared")
}

// bareEdges is a dag as the bare schedulers see it, in flat arrays:
// vertex v's kids are to[off[v]:off[v+1]], deps[v] is how many things
// it waits for. Vertices [0, n) are node-roles; the others are barriers
// (aggregates), done when all they wait for is.
type bareEdges struct {
	n       int
	off, to []int32
	deps    []int32
}

func edgesOf(g *dag) *bareEdges {
	kids, deps := g.schedGraph()
	e := &bareEdges{n: len(g.nrs), off: make([]int32, 0, len(kids)+1), deps: deps}
	for _, ks := range kids {
		e.off = append(e.off, int32(len(e.to)))
		e.to = append(e.to, ks...)
	}
	e.off = append(e.off, int32(len(e.to)))
	return e
}

// bareGraph is what a bare scheduler keeps while it runs: the unfinished
// dependencies of each vertex, and the node-roles ready to run.
type bareGraph struct {
	*bareEdges
	need  []int32
	ready []int32
}

func newBareGraph(e *bareEdges) *bareGraph {
	bg := &bareGraph{bareEdges: e, need: append([]int32(nil), e.deps...)}
	for i := range bg.n {
		if bg.need[i] == 0 {
			bg.ready = append(bg.ready, int32(i))
		}
	}
	return bg
}

func (bg *bareGraph) kids(v int32) []int32 { return bg.to[bg.off[v]:bg.off[v+1]] }

// take removes and returns a ready node-role.
func (bg *bareGraph) take() int32 {
	i := bg.ready[len(bg.ready)-1]
	bg.ready = bg.ready[:len(bg.ready)-1]
	return i
}

// done counts node-role i done, making ready what waited only for it.
func (bg *bareGraph) done(i int32) {
	for _, k := range bg.kids(i) {
		if bg.need[k]--; bg.need[k] != 0 {
			continue
		}
		if int(k) < bg.n {
			bg.ready = append(bg.ready, k)
			continue
		}
		for _, c := range bg.kids(k) { // a barrier
			if bg.need[c]--; bg.need[c] == 0 {
				bg.ready = append(bg.ready, c)
			}
		}
	}
}

// bareSharedSchedule is bareSchedule as the executor schedules: par
// workers take ready node-roles from one list and count them done under
// one lock, waiting on a condition when nothing is ready — no channel
// hand-offs. It returns the wall time per node-role.
func bareSharedSchedule(e *bareEdges, par int) float64 {
	start := time.Now()
	bg := newBareGraph(e)
	var mu sync.Mutex
	wake := sync.NewCond(&mu)
	done := 0
	var workers sync.WaitGroup
	for range par {
		workers.Add(1)
		go func() {
			defer workers.Done()
			mu.Lock()
			defer mu.Unlock()
			for done < bg.n {
				if len(bg.ready) == 0 {
					wake.Wait()
					continue
				}
				i := bg.take()
				mu.Unlock()
				// the role: nothing
				mu.Lock()
				done++
				bg.done(i)
				wake.Broadcast()
			}
		}()
	}
	workers.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(bg.n)
}

// bareSchedule runs g's node-roles as a bare in-degree scheduler would —
// par workers fed through one channel and answering through another, a
// count of unfinished dependencies per node-role, a no-op for a role —
// and returns the wall time per node-role: the floor the executor's own
// overhead is measured against.
func bareSchedule(e *bareEdges, par int) float64 {
	start := time.Now()
	bg := newBareGraph(e) // aggregates are vertices too: done when their producers are
	jobs, res := make(chan int32, par), make(chan int32, par)
	for range par {
		go func() {
			for i := range jobs {
				res <- i // the role: nothing
			}
		}()
	}
	running, done := 0, 0
	for done < bg.n {
		for len(bg.ready) > 0 && running < par {
			jobs <- bg.take()
			running++
		}
		i := <-res
		running--
		done++
		bg.done(i)
	}
	close(jobs)
	return float64(time.Since(start).Nanoseconds()) / float64(bg.n)
}

// BenchmarkJournalBolt: the overhead benchmark on bbolt (one fsync per
// group commit) against the in-memory store; metric bolt/mem (target ≤ 3).
func BenchmarkJournalBolt(b *testing.B) {
	dir := b.TempDir()
	var memT, boltT float64
	for i := range b.N {
		st := mem.New()
		memT += runOverhead(b, st)
		st.Close()
		bs, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("state%d.db", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		boltT += runOverhead(b, bs)
		bs.Close()
	}
	b.ReportMetric(boltT/float64(b.N), "bolt-ns/noderole")
	b.ReportMetric(memT/float64(b.N), "mem-ns/noderole")
	b.ReportMetric(boltT/memT, "bolt/mem")
}

// randomDAG builds a deployment-shaped random DAG: nodes with a chain of
// roles each (some skipping links), cluster aggregates waiting for one
// role on every node, and roles waiting for an aggregate. Durations are
// heavy-tailed.
func randomDAG(r *rand.Rand, nodes, roles int) (kids [][]int32, deps []int32, node []int32, dur []int64) {
	type nr struct {
		deps []int32
		node int32
		dur  int64
	}
	var all []nr
	aggAfter := map[int]int32{} // role index → aggregate node-role
	for k := 0; k < roles; k++ {
		if k > 0 && r.IntN(3) == 0 {
			// An aggregate over role k-1 on every node.
			var ds []int32
			for n := 0; n < nodes; n++ {
				ds = append(ds, int32(len(all)-nodes+n))
			}
			aggAfter[k] = int32(len(all))
			all = append(all, nr{deps: ds, node: -1, dur: 1 + r.Int64N(20)})
		}
		for n := 0; n < nodes; n++ {
			var ds []int32
			if agg, ok := aggAfter[k]; ok {
				ds = append(ds, agg)
			}
			all = append(all, nr{deps: ds, node: int32(n), dur: 1 + int64(r.ExpFloat64()*20)})
		}
	}
	// Chain links on each node: role k waits for role k-1 on its node.
	perNode := make([][]int32, nodes)
	for i, x := range all {
		if x.node >= 0 {
			perNode[x.node] = append(perNode[x.node], int32(i))
		}
	}
	for _, list := range perNode {
		for k := 1; k < len(list); k++ {
			if r.IntN(5) != 0 { // most, not all, roles chain
				all[list[k]].deps = append(all[list[k]].deps, list[k-1])
			}
		}
	}
	// Some cross-node links (a worker waiting for a manager's token).
	for i := range all {
		if all[i].node >= 0 && i > nodes && r.IntN(10) == 0 {
			all[i].deps = append(all[i].deps, int32(r.IntN(i)))
		}
	}
	kids = make([][]int32, len(all))
	deps = make([]int32, len(all))
	node = make([]int32, len(all))
	dur = make([]int64, len(all))
	for i, x := range all {
		u := uniqueSorted(x.deps)
		deps[i] = int32(len(u))
		for _, d := range u {
			kids[d] = append(kids[d], int32(i))
		}
		node[i], dur[i] = x.node, x.dur
	}
	return kids, deps, node, dur
}

// simulate runs the scheduling core in virtual time with p workers and
// one node-role per node at a time; it returns the makespan.
func simulate(kids [][]int32, deps, node []int32, nodes int, dur []int64, p int, fifo bool) int64 {
	s := newSched(kids, deps, node, nodes, dur, 1, fifo)
	s.start()
	type ev struct {
		t int64
		i int32
	}
	var running []ev
	var now int64
	for {
		for len(running) < p {
			i := s.next()
			if i < 0 {
				break
			}
			running = append(running, ev{now + dur[i], i})
		}
		if len(running) == 0 {
			return now
		}
		k := 0
		for j := range running {
			if running[j].t < running[k].t {
				k = j
			}
		}
		e := running[k]
		running = append(running[:k], running[k+1:]...)
		now = e.t
		s.release(e.i)
		s.succeed(e.i, false)
	}
}

// lowerBound is max(critical path, total work / p, most work on one node).
func lowerBound(kids [][]int32, node []int32, nodes int, dur []int64, p int) float64 {
	n := len(kids)
	cp := make([]int64, n)
	var longest, total int64
	perNode := make([]int64, nodes)
	for i := n - 1; i >= 0; i-- {
		var best int64
		for _, k := range kids[i] {
			best = max(best, cp[k])
		}
		cp[i] = best + dur[i]
		longest = max(longest, cp[i])
		total += dur[i]
		if node[i] >= 0 {
			perNode[node[i]] += dur[i]
		}
	}
	bound := max(float64(longest), float64(total)/float64(p))
	for _, w := range perNode {
		bound = max(bound, float64(w))
	}
	return bound
}

// BenchmarkMakespan: random deployment-shaped DAGs scheduled in virtual
// time by the executor's core with critical-path ordering and, as a
// baseline, FIFO; metrics makespan/bound and fifo-makespan/bound (target:
// ≤ 1.05 and ≤ FIFO).
func BenchmarkMakespan(b *testing.B) {
	for _, tc := range []struct{ nodes, roles, p int }{{40, 6, 8}, {200, 6, 32}, {20, 8, 4}} {
		b.Run(fmt.Sprintf("nodes=%d/roles=%d/P=%d", tc.nodes, tc.roles, tc.p), func(b *testing.B) {
			var ratio, fifoRatio float64
			runs := 0
			for i := range b.N {
				for seed := range 20 {
					r := rand.New(rand.NewPCG(uint64(i), uint64(seed)))
					kids, deps, node, dur := randomDAG(r, tc.nodes, tc.roles)
					bound := lowerBound(kids, node, tc.nodes, dur, tc.p)
					ratio += float64(simulate(kids, deps, node, tc.nodes, dur, tc.p, false)) / bound
					fifoRatio += float64(simulate(kids, deps, node, tc.nodes, dur, tc.p, true)) / bound
					runs++
				}
			}
			b.ReportMetric(ratio/float64(runs), "makespan/bound")
			b.ReportMetric(fifoRatio/float64(runs), "fifo-makespan/bound")
		})
	}
}
