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
	require.Equal(t, graph.ReasonNew, s.Why)
	require.Equal(t, 1, f.count("join@n1"))

	// Each case makes its history on a store of its own, so that it
	// passes run alone: `go test -run 'TestPlanReasons/NAME'`.
	workers5 := func(f *fakes, version string) *graph.Deployment {
		d := reasonDeployment(f, version, false)
		graph.Set(d, workers, 5)
		return d
	}
	overridden := func(f *fakes, version string) *graph.Deployment {
		d := workers5(f, version)
		graph.Override(d, joinToken, "override")
		return d
	}
	for _, tc := range []struct {
		name    string
		history []func(f *fakes) *graph.Deployment // applied in turn before the plan
		build   func(f *fakes) *graph.Deployment
		opts    []graph.PlanOption
		want    map[string]string // ID → reason; others converged
		kind    graph.ReasonKind  // of the wanted reasons
		action  graph.Action
		// joinRuns is how many times join@n1 ran in all, the plan applied.
		joinRuns int
	}{
		{name: "last run failed",
			history: []func(f *fakes) *graph.Deployment{func(f *fakes) *graph.Deployment { return reasonDeployment(f, "1", true) }},
			build:   func(f *fakes) *graph.Deployment { return reasonDeployment(f, "1", false) },
			want:    map[string]string{"join@n2": "last run failed: join@n2: exploded"}, kind: graph.ReasonLastFailed, action: graph.ActionRun,
			joinRuns: 1},
		{name: "attribute changed",
			history: []func(f *fakes) *graph.Deployment{func(f *fakes) *graph.Deployment { return reasonDeployment(f, "1", false) }},
			build:   func(f *fakes) *graph.Deployment { return workers5(f, "1") },
			want:    map[string]string{"join@n1": "input Workers changed", "join@n2": "input Workers changed"}, kind: graph.ReasonInputChanged, action: graph.ActionRun,
			joinRuns: 2},
		{name: "override beats the published output",
			history: []func(f *fakes) *graph.Deployment{func(f *fakes) *graph.Deployment { return workers5(f, "1") }},
			build:   func(f *fakes) *graph.Deployment { return overridden(f, "1") },
			want:    map[string]string{"join@n1": "input Token changed", "join@n2": "input Token changed"}, kind: graph.ReasonInputChanged, action: graph.ActionRun,
			joinRuns: 2},
		{name: "role version changed",
			history: []func(f *fakes) *graph.Deployment{func(f *fakes) *graph.Deployment { return overridden(f, "1") }},
			build:   func(f *fakes) *graph.Deployment { return overridden(f, "2") },
			want:    map[string]string{"join@n1": "role version changed: 1 → 2", "join@n2": "role version changed: 1 → 2"}, kind: graph.ReasonVersionChanged, action: graph.ActionRun,
			joinRuns: 2},
		// The forced init produces the same output, and the override wins
		// anyway: join finds its inputs unchanged and does not run.
		{name: "forced by role name",
			history: []func(f *fakes) *graph.Deployment{func(f *fakes) *graph.Deployment { return overridden(f, "2") }},
			build:   func(f *fakes) *graph.Deployment { return overridden(f, "2") },
			opts:    []graph.PlanOption{graph.Force("init")},
			want: map[string]string{
				"init@n1": "forced", "init@n2": "forced",
				"join@n1": "inputs known after run (waits for init@n1)", "join@n2": "inputs known after run (waits for init@n2)"},
			joinRuns: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakes()
			st := memStore(t)
			for _, h := range tc.history {
				p, err := graph.NewPlan(context.Background(), h(f), st)
				require.NoError(t, err)
				_, _ = graph.Apply(context.Background(), p, graph.Options{}) // the history may fail on cue
			}
			p, err := graph.NewPlan(context.Background(), tc.build(f), st, tc.opts...)
			require.NoError(t, err)
			for _, s := range p.Steps {
				want, ok := tc.want[s.ID]
				if !ok {
					require.Equal(t, graph.ActionSkip, s.Action, "%s: %s", s.ID, s.Reason)
					require.Equal(t, graph.ReasonConverged, s.Why, s.ID)
					continue
				}
				require.Equal(t, want, s.Reason, s.ID)
				if tc.kind != 0 {
					require.Equal(t, tc.kind, s.Why, s.ID)
				}
				if tc.action != 0 {
					require.Equal(t, tc.action, s.Action, s.ID)
				}
			}
			res, err := graph.Apply(context.Background(), p, graph.Options{})
			require.NoError(t, err)
			require.Equal(t, tc.joinRuns, f.count("join@n1"))
			if tc.name == "forced by role name" {
				require.Equal(t, graph.ReasonForced, p.Steps[0].Why)
				o := state(t, res, "join@n1")
				require.Equal(t, graph.StateSkipped, o.State)
				require.Equal(t, graph.ReasonConverged, o.Why)
				require.Equal(t, "converged: inputs unchanged after upstream ran", o.Reason)
				for _, id := range []string{"join@n1", "join@n2"} {
					st, _ := p.Step(id)
					require.Equal(t, graph.ReasonInputsAfterRun, st.Why)
				}
			}
		})
	}
}
