package graph_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// Roles for PublishOutput: no output field is tagged with the attribute
// its consumers take.
type (
	MgrOut struct {
		Token attr.Secret[string]
		Addr  string
		Port  int
	}
	LabelOut struct{ Name string }
	TokenIn  struct {
		JoinToken attr.Secret[string] `attr:"swarm.join_token"`
	}
	LabeledIn struct {
		Label string `attr:"node.label"`
		Addr  string `attr:"swarm.manager_addr"`
	}
)

// swarm is a cluster manager whose token can be changed between applies,
// workers that record the token they received, and a node-scope labeler
// whose output reaches only roles on its own node.
type swarm struct {
	mu     sync.Mutex
	token  string
	got    map[string]string // worker node-role -> token it received
	labels map[string]string // labeled node-role -> label it received
	runs   map[string]int
	kek    *seal.KEK
}

func newSwarm() *swarm {
	k, err := seal.Generate()
	if err != nil {
		panic(err)
	}
	return &swarm{token: "tok-1", got: map[string]string{}, labels: map[string]string{}, runs: map[string]int{}, kek: k}
}

func (s *swarm) deployment(mgrVersion string) *graph.Deployment {
	mgr := role.Func(role.Meta{Name: "mgr", Version: mgrVersion, Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (MgrOut, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.runs[idOf(rc)]++
			return MgrOut{Token: attr.Conceal(s.token), Addr: rc.Node().Name + ":2377"}, nil
		})
	wkr := role.Func(role.Meta{Name: "wkr", Version: "1"},
		func(ctx context.Context, rc *role.Context, in TokenIn) (struct{}, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.runs[idOf(rc)]++
			s.got[idOf(rc)] = in.JoinToken.Reveal()
			return struct{}{}, nil
		})
	labeler := role.Func(role.Meta{Name: "labeler", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (LabelOut, error) {
			return LabelOut{Name: "label-" + rc.Node().Name}, nil
		})
	labeled := role.Func(role.Meta{Name: "labeled", Version: "1"},
		func(ctx context.Context, rc *role.Context, in LabeledIn) (struct{}, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.labels[idOf(rc)] = in.Label + " " + in.Addr
			return struct{}{}, nil
		})
	d := graph.NewDeployment("swarm")
	d.UseKEK(s.kek) // the join token is a secret
	p := d.Pool("all", nodes("n1", "n2", "n3")...)
	d.Bind(p, role.Of(mgr), role.Of(wkr), role.Of(labeler), role.Of(labeled))
	d.PublishOutput("mgr", "Token", "swarm.join_token")
	d.PublishOutput("mgr", "Addr", "swarm.manager_addr")
	d.PublishOutput("labeler", "Name", "node.label")
	return d
}

func TestPublishOutput(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	s := newSwarm()

	// Plan: the edges follow the published outputs.
	p, err := graph.NewPlan(ctx, s.deployment("1"), st)
	require.NoError(t, err)
	for _, tc := range []struct {
		id    string
		waits []string
	}{
		{"wkr@n1", []string{"mgr@n1"}},
		{"wkr@n3", []string{"mgr@n1"}},
		{"labeled@n2", []string{"labeler@n2", "mgr@n1"}},
		{"labeled@n3", []string{"labeler@n3", "mgr@n1"}},
	} {
		s := stepOf(t, p, tc.id)
		require.ElementsMatch(t, tc.waits, s.WaitsFor, tc.id)
		require.Equal(t, graph.ActionRun, s.Action, tc.id)
	}
	res, err := graph.Apply(ctx, p, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 10, res.Count(graph.StateSucceeded))

	// Values delivered: the manager's token to every worker, each node's
	// own label (a node role's output stays on its node).
	require.Equal(t, map[string]string{"wkr@n1": "tok-1", "wkr@n2": "tok-1", "wkr@n3": "tok-1"}, s.got)
	require.Equal(t, map[string]string{
		"labeled@n1": "label-n1 n1:2377", "labeled@n2": "label-n2 n1:2377", "labeled@n3": "label-n3 n1:2377",
	}, s.labels)

	// Converged; provenance names the producer and its node.
	p, err = graph.NewPlan(ctx, s.deployment("1"), st)
	require.NoError(t, err)
	require.Equal(t, 10, p.Count(graph.ActionSkip), p.String())
	for id, want := range map[string][]string{
		"wkr@n2":     {"JoinToken <- output of mgr on n1"},
		"labeled@n3": {"Label <- output of labeler on n3", "Addr <- output of mgr on n1"},
	} {
		bs, err := p.BindingsOf(id)
		require.NoError(t, err)
		var got []string
		for _, b := range bs {
			got = append(got, b.String())
		}
		require.Equal(t, want, got, id)
	}

	// The producer re-runs with the same output: nothing downstream runs.
	p, res = mustApply(t, s.deployment("2"), st)
	require.Equal(t, graph.ActionRun, stepOf(t, p, "mgr@n1").Action)
	require.Equal(t, graph.ActionRunIfChanged, stepOf(t, p, "wkr@n2").Action)
	require.Equal(t, 1, res.Count(graph.StateSucceeded), "only mgr@n1 runs")
	require.Equal(t, 1, s.runs["wkr@n2"])

	// The producer's output changes: every consumer of the token runs
	// again and gets the new value; the labeled roles (same Addr) do not.
	s.token = "tok-2"
	_, res = mustApply(t, s.deployment("3"), st)
	require.Equal(t, 4, res.Count(graph.StateSucceeded), "mgr@n1 and wkr@n1..n3")
	require.Equal(t, map[string]string{"wkr@n1": "tok-2", "wkr@n2": "tok-2", "wkr@n3": "tok-2"}, s.got)
	require.Equal(t, 2, s.runs["wkr@n2"])
}

func mustApply(t *testing.T, d *graph.Deployment, st store.Store) (*graph.Plan, *graph.Result) {
	t.Helper()
	p, res, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	return p, res
}

func stepOf(t *testing.T, p *graph.Plan, id string) graph.Step {
	t.Helper()
	s, ok := p.Step(id)
	require.True(t, ok, "no step %s", id)
	return s
}

func TestPublishOutputErrors(t *testing.T) {
	mgr := role.Func(role.Meta{Name: "mgr", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (MgrOut, error) { return MgrOut{}, nil })
	tagged := role.Func(role.Meta{Name: "tagged", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (struct {
			A string `attr:"x.a"`
			B string
		}, error) {
			return struct {
				A string `attr:"x.a"`
				B string
			}{}, nil
		})
	wkr := role.Func(role.Meta{Name: "wkr"},
		func(ctx context.Context, rc *role.Context, in TokenIn) (struct{}, error) { return struct{}{}, nil })
	portIn := role.Func(role.Meta{Name: "port-user"},
		func(ctx context.Context, rc *role.Context, in struct {
			Port string `attr:"swarm.port"`
		}) (struct{}, error) {
			return struct{}{}, nil
		})
	labeler := role.Func(role.Meta{Name: "labeler"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (LabelOut, error) { return LabelOut{}, nil })
	for _, tc := range []struct {
		name  string
		build func(d *graph.Deployment, p *graph.Pool)
		want  []string
	}{
		{"unbound role", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(wkr))
			d.PublishOutput("ghost", "Token", "swarm.join_token")
		}, []string{`role "ghost" is not bound`, "PublishOutput at", "publish_test.go"}},
		{"missing field", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(mgr))
			d.PublishOutput("mgr", "Secret", "swarm.join_token")
		}, []string{`output Secret of role "mgr"`, "has no such exported field (it has: Token, Addr, Port)"}},
		{"invalid attribute name", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(mgr))
			d.PublishOutput("mgr", "Token", "Join Token")
		}, []string{`invalid attribute name "Join Token"`}},
		{"type mismatch", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(mgr), role.Of(portIn))
			d.PublishOutput("mgr", "Port", "swarm.port")
		}, []string{`role "port-user" on n1: input Port (string, attr "swarm.port")`, `output Port of mgr@n1, published as "swarm.port", is a int`}},
		{"tag publishes it from another field", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(tagged))
			d.PublishOutput("tagged", "B", "x.a")
		}, []string{`already publishes attribute "x.a" from output A`}},
		{"two fields as one attribute", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(mgr))
			d.PublishOutput("mgr", "Addr", "swarm.addr")
			d.PublishOutput("mgr", "Port", "swarm.addr")
		}, []string{`attribute "swarm.addr" is already published from output Addr`}},
		{"ambiguous producers", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(mgr), role.Of(tagged), role.Of(wkr))
			d.PublishOutput("mgr", "Token", "swarm.join_token")
			d.PublishOutput("tagged", "B", "swarm.join_token")
		}, []string{`role "wkr" on n1: input JoinToken`, "ambiguous: published by mgr@n1, tagged@n1"}},
		{"node output not visible elsewhere", func(d *graph.Deployment, p *graph.Pool) {
			d.Bind(p, role.Of(labeler))
			d.Bind(d.Pool("other", nodes("n9")...), role.Of(wkr))
			d.PublishOutput("labeler", "Name", "swarm.join_token")
		}, []string{`role "wkr" on n9`, `attribute "swarm.join_token" has no value`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := graph.NewDeployment("errs")
			tc.build(d, d.Pool("p", nodes("n1", "n2")...))
			_, err := graph.NewPlan(context.Background(), d, memStore(t))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}
