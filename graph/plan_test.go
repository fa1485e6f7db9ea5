package graph_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
)

var joinToken = attr.New[string]("swarm.join_token")
var workers = attr.New[int]("swarm.workers")

type InitOut struct {
	Token string `attr:"swarm.join_token"`
}

type JoinIn struct {
	Token   string `attr:"swarm.join_token"`
	Workers int    `attr:"swarm.workers" default:"3"`
}

// reasonDeployment: on each node "init" publishes an attribute that
// "join" reads by name.
func reasonDeployment(f *fakes, version string, failJoin bool) *graph.Deployment {
	initRole := role.Func(role.Meta{Name: "init"}, func(ctx context.Context, rc *role.Context, _ struct{}) (InitOut, error) {
		return InitOut{Token: "tok-" + rc.Node().Name}, f.hook(ctx, rc)
	})
	join := role.Func(role.Meta{Name: "join", Version: version}, func(ctx context.Context, rc *role.Context, in JoinIn) (COut, error) {
		if in.Token != "tok-"+rc.Node().Name && in.Token != "override" {
			return COut{}, context.DeadlineExceeded
		}
		return COut{V: in.Token}, f.hook(ctx, rc)
	})
	if failJoin {
		f.always["join@n2"] = true
	} else {
		delete(f.always, "join@n2")
	}
	d := graph.NewDeployment("reasons")
	d.Bind(d.Pool("p", nodes("n1", "n2")...), role.Of(initRole), role.Of(join))
	return d
}

func TestPlanReasons(t *testing.T) {
	f := newFakes()
	st := memStore(t)
	_, res, err := planApply(t, reasonDeployment(f, "1", true), st, graph.Options{})
	require.Error(t, err)
	// join checks that init's published attribute reached it.
	require.Equal(t, graph.StateSucceeded, state(t, res, "join@n1").State)
	s, _ := res.Outcome("join@n1")
	require.Equal(t, "new", s.Reason)
	require.Equal(t, 1, f.count("join@n1"))

	for _, tc := range []struct {
		name   string
		build  func() *graph.Deployment
		opts   []graph.PlanOption
		want   map[string]string // ID → reason; others converged
		action graph.Action
	}{
		{"last run failed", func() *graph.Deployment { return reasonDeployment(f, "1", false) }, nil,
			map[string]string{"join@n2": "last run failed: join@n2: exploded"}, graph.ActionRun},
		{"attribute changed", func() *graph.Deployment {
			d := reasonDeployment(f, "1", false)
			graph.Set(d, workers, 5)
			return d
		}, nil, map[string]string{"join@n1": "input Workers changed", "join@n2": "input Workers changed"}, graph.ActionRun},
		{"override beats the published output", func() *graph.Deployment {
			d := reasonDeployment(f, "1", false)
			graph.Set(d, workers, 5)
			graph.Override(d, joinToken, "override")
			return d
		}, nil, map[string]string{"join@n1": "input Token changed", "join@n2": "input Token changed"}, graph.ActionRun},
		{"role version changed", func() *graph.Deployment {
			d := reasonDeployment(f, "2", false)
			graph.Set(d, workers, 5)
			graph.Override(d, joinToken, "override")
			return d
		}, nil, map[string]string{"join@n1": "role version changed: 1 → 2", "join@n2": "role version changed: 1 → 2"}, graph.ActionRun},
		{"forced by role name", func() *graph.Deployment {
			d := reasonDeployment(f, "2", false)
			graph.Set(d, workers, 5)
			graph.Override(d, joinToken, "override")
			return d
		}, []graph.PlanOption{graph.Force("init")}, map[string]string{
			"init@n1": "forced", "init@n2": "forced",
			"join@n1": "inputs known after run (waits for init@n1)", "join@n2": "inputs known after run (waits for init@n2)"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := graph.NewPlan(context.Background(), tc.build(), st, tc.opts...)
			require.NoError(t, err)
			for _, s := range p.Steps {
				want, ok := tc.want[s.ID]
				if !ok {
					require.Equal(t, graph.ActionSkip, s.Action, "%s: %s", s.ID, s.Reason)
					continue
				}
				require.Equal(t, want, s.Reason, s.ID)
				if tc.action != 0 {
					require.Equal(t, tc.action, s.Action, s.ID)
				}
			}
			_, err = graph.Apply(context.Background(), p, graph.Options{})
			require.NoError(t, err)
		})
	}
	// The forced init produced the same output, and the override wins
	// anyway: join found its inputs unchanged.
	require.Equal(t, 1+1+1+1, f.count("join@n1")) // first run, Workers, Token, version
}
