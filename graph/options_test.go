package graph_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
)

var replicas = attr.New[int]("svc.replicas").WithValidation(func(n int) error {
	if n < 1 {
		return fmt.Errorf("want at least one replica, got %d", n)
	}
	return nil
})

type replicasIn struct {
	Replicas int `attr:"svc.replicas" default:"1"`
}

// SetNode sets a value on one node above the deployment's, with the
// caller's file and line as provenance; a value its key refuses fails the
// plan, naming the call.
func TestSetNode(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	svc := role.Of(role.Func(role.Meta{Name: "svc"}, func(ctx context.Context, rc *role.Context, in replicasIn) (COut, error) {
		mu.Lock()
		defer mu.Unlock()
		got[rc.Node().Name] = in.Replicas
		return COut{}, nil
	}))
	d := graph.NewDeployment("setnode")
	d.Bind(d.Pool("p", nodes("n1", "n2", "n3")...), svc)
	graph.Set(d, replicas, 3)
	graph.SetNode(d, "n2", replicas, 5)
	st := memStore(t)
	p, res, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 3, res.Count(graph.StateSucceeded))
	require.Equal(t, map[string]int{"n1": 3, "n2": 5, "n3": 3}, got)

	bs, err := p.BindingsOf("svc@n2")
	require.NoError(t, err)
	require.Regexp(t, `^Replicas <- node n2 \(.*/graph/options_test.go:\d+\)$`, bs[0].String())
	bs, err = p.BindingsOf("svc@n1")
	require.NoError(t, err)
	require.Regexp(t, `^Replicas <- deployment \(.*/graph/options_test.go:\d+\)$`, bs[0].String())
	v, ok := d.NodeAttrs("n2").Lookup("svc.replicas")
	require.True(t, ok)
	require.Equal(t, "n2", v.Source.Node)

	// A node's value changes only that node's input.
	d2 := graph.NewDeployment("setnode")
	d2.Bind(d2.Pool("p", nodes("n1", "n2", "n3")...), svc)
	graph.Set(d2, replicas, 3)
	graph.SetNode(d2, "n2", replicas, 7)
	p2, err := graph.NewPlan(context.Background(), d2, st)
	require.NoError(t, err)
	for _, s := range p2.Steps {
		if s.ID == "svc@n2" {
			require.Equal(t, graph.ReasonInputChanged, s.Why)
			require.Equal(t, []string{"Replicas"}, s.Changed)
		} else {
			require.Equal(t, graph.ReasonConverged, s.Why, s.ID)
		}
	}

	bad := graph.NewDeployment("setnode-bad")
	bad.Bind(bad.Pool("p", nodes("n1")...), svc)
	graph.SetNode(bad, "n1", replicas, 0)
	_, err = graph.NewPlan(context.Background(), bad, memStore(t))
	require.ErrorContains(t, err, "graph: SetNode at ")
	require.ErrorContains(t, err, "options_test.go:")
	require.ErrorContains(t, err, "want at least one replica, got 0")
}

// inFlight is a role whose Check records how many checks run at once.
// Each check waits (up to a few seconds) until want have run at once, so
// that the bound is reached however slowly goroutines start; only the
// bound keeps more from running.
type inFlight struct {
	want     int32
	now, max atomic.Int32
}

func (*inFlight) Meta() role.Meta { return role.Meta{Name: "probe", Version: "1"} }

func (*inFlight) Run(ctx context.Context, rc *role.Context, _ struct{}) (AOut, error) {
	return AOut{V: rc.Node().Name}, nil
}

func (f *inFlight) Check(ctx context.Context, rc *role.Context, _ struct{}, _ AOut) (string, error) {
	n := f.now.Add(1)
	defer f.now.Add(-1)
	for {
		m := f.max.Load()
		if n <= m || f.max.CompareAndSwap(m, n) {
			break
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.max.Load() < f.want && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	return "", nil
}

// CheckParallelism bounds how many drift checks run at once; below one it
// means one, and the default is 8.
func TestCheckParallelism(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []graph.PlanOption
		want int32
	}{
		{"two", []graph.PlanOption{graph.CheckParallelism(2)}, 2},
		{"one", []graph.PlanOption{graph.CheckParallelism(1)}, 1},
		{"zero means one", []graph.PlanOption{graph.CheckParallelism(0)}, 1},
		{"default", nil, 6}, // 8 allowed: all six at once
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe := &inFlight{want: tc.want}
			build := func() *graph.Deployment {
				d := graph.NewDeployment("checks")
				d.Bind(d.Pool("p", nodes(nodeNames(6)...)...), role.Of(probe))
				return d
			}
			st := memStore(t)
			_, _, err := planApply(t, build(), st, graph.Options{}, graph.SkipChecks())
			require.NoError(t, err)
			p, err := graph.NewPlan(context.Background(), build(), st, tc.opts...)
			require.NoError(t, err)
			require.Equal(t, 6, p.Count(graph.ActionSkip), "checked and converged")
			require.Equal(t, tc.want, probe.max.Load(), "checks at once")
		})
	}
}
