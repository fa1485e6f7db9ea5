package graph_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// Output types for the fake roles: wiring is by type.
type (
	AOut   struct{ V string }
	BOut   struct{ V string }
	COut   struct{ V string }
	AggOut struct{ Members []string }
)

// fakes makes roles that count their runs and sleep or fail on cue.
type fakes struct {
	mu       sync.Mutex
	runs     map[string]int  // completed Run calls per node-role
	starts   []string        // start order
	failN    map[string]int  // fail the first N attempts
	perm     map[string]bool // fail with backoff.Permanent
	always   map[string]bool // always fail
	sleep    map[string]time.Duration
	gate     map[string]chan struct{} // block until closed
	running  atomic.Int32
	maxRun   atomic.Int32
	perNode  map[string]int
	maxNode  int
	startedC chan string
}

func newFakes() *fakes {
	return &fakes{runs: map[string]int{}, failN: map[string]int{}, perm: map[string]bool{}, always: map[string]bool{},
		sleep: map[string]time.Duration{}, gate: map[string]chan struct{}{}, perNode: map[string]int{}}
}

func idOf(rc *role.Context) string {
	if rc.Node() == nil {
		return rc.Role()
	}
	return rc.Role() + "@" + rc.Node().Name
}

// hook is what every fake role does: record, wait, maybe fail.
func (f *fakes) hook(ctx context.Context, rc *role.Context) error {
	id := idOf(rc)
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxRun.Load()
		if n <= m || f.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.starts = append(f.starts, id)
	if rc.Node() != nil {
		f.perNode[rc.Node().Name]++
		if f.perNode[rc.Node().Name] > f.maxNode {
			f.maxNode = f.perNode[rc.Node().Name]
		}
	}
	sleep, gate := f.sleep[id], f.gate[id]
	if sleep == 0 {
		sleep = f.sleep[rc.Role()]
	}
	c := f.startedC
	f.mu.Unlock()
	if c != nil {
		c <- id
	}
	if gate != nil {
		<-gate
	}
	time.Sleep(sleep)
	f.mu.Lock()
	defer f.mu.Unlock()
	if rc.Node() != nil {
		f.perNode[rc.Node().Name]--
	}
	f.runs[id]++
	switch {
	case f.perm[id]:
		return backoff.Permanent(fmt.Errorf("%s: disk is read-only", id))
	case f.always[id] || f.always[rc.Role()]:
		return fmt.Errorf("%s: exploded", id)
	case f.failN[id] >= rc.Attempt():
		return fmt.Errorf("%s: flaky failure on attempt %d", id, rc.Attempt())
	}
	return nil
}

func (f *fakes) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func (f *fakes) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.runs {
		n += c
	}
	return n
}

var fastRetry = role.Retry{MaxAttempts: 3, Initial: time.Millisecond, Max: 2 * time.Millisecond}

// roleA produces AOut on every node.
func (f *fakes) roleA(meta role.Meta) *role.Def {
	if meta.Name == "" {
		meta.Name = "a"
	}
	return role.Of(role.Func(meta, func(ctx context.Context, rc *role.Context, _ struct{}) (AOut, error) {
		return AOut{V: "a-" + rc.Node().Name}, f.hook(ctx, rc)
	}))
}

type BIn struct{ A role.Same[AOut] }

// roleB consumes AOut on the same node.
func (f *fakes) roleB(meta role.Meta) *role.Def {
	if meta.Name == "" {
		meta.Name = "b"
	}
	return role.Of(role.Func(meta, func(ctx context.Context, rc *role.Context, in BIn) (BOut, error) {
		return BOut{V: in.A.Value.V + "+b"}, f.hook(ctx, rc)
	}))
}

type CIn struct{ B role.Same[BOut] }

func (f *fakes) roleC(meta role.Meta) *role.Def {
	if meta.Name == "" {
		meta.Name = "c"
	}
	return role.Of(role.Func(meta, func(ctx context.Context, rc *role.Context, in CIn) (COut, error) {
		return COut{V: in.B.Value.V + "+c"}, f.hook(ctx, rc)
	}))
}

type AggIn struct{ Peers role.All[AOut] }

// roleAgg consumes every node's AOut (cluster scope by default).
func (f *fakes) roleAgg(meta role.Meta) *role.Def {
	if meta.Name == "" {
		meta.Name = "agg"
	}
	if meta.Scope == role.ScopeNode && meta.Name == "agg" {
		meta.Scope = role.ScopeCluster
	}
	return role.Of(role.Func(meta, func(ctx context.Context, rc *role.Context, in AggIn) (AggOut, error) {
		return AggOut{Members: in.Peers.Nodes()}, f.hook(ctx, rc)
	}))
}

func nodes(names ...string) []*provider.Node {
	out := make([]*provider.Node, len(names))
	for i, n := range names {
		out[i] = &provider.Node{Name: n}
	}
	return out
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

// memStore returns an in-memory store closed when t ends.
func memStore(t testing.TB) store.Store {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	return st
}

func planApply(t testing.TB, d *graph.Deployment, st store.Store, o graph.Options, po ...graph.PlanOption) (*graph.Plan, *graph.Result, error) {
	t.Helper()
	p, err := graph.NewPlan(context.Background(), d, st, po...)
	require.NoError(t, err)
	res, err := graph.Apply(context.Background(), p, o)
	require.NotNil(t, res)
	return p, res, err
}

func state(t testing.TB, res *graph.Result, id string) graph.Outcome {
	t.Helper()
	o, ok := res.Outcome(id)
	require.True(t, ok, "no outcome for %s", id)
	return o
}
