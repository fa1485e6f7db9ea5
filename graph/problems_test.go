package graph_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

type GreetIn struct {
	Name  string `attr:"greet.name"`
	Other string `attr:"greet.other,optional"`
}

// A missing attribute on 100 nodes is one problem, flat, that still
// errors.As to *role.BindError; every distinct cause is kept.
func TestMissingAttributeOn100NodesIsOneProblem(t *testing.T) {
	greet := role.Func(role.Meta{Name: "greet"}, func(ctx context.Context, rc *role.Context, in GreetIn) (struct{}, error) {
		return struct{}{}, nil
	})
	d := graph.NewDeployment("web")
	var ns []*provider.Node
	for i := 1; i <= 100; i++ {
		ns = append(ns, &provider.Node{Name: fmt.Sprintf("web-%d", i)})
	}
	d.Bind(d.Pool("web", ns...), role.Of(greet))
	_, err := graph.NewPlan(context.Background(), d, memStore(t))
	require.Error(t, err)
	require.Equal(t, `graph: planning web: role "greet" on web-1 … web-100 (100 nodes): input Name (string, attr "greet.name"): attribute "greet.name" has no value; looked at: override, role outputs, node, deployment, key default, `+"`default`"+` tag`, err.Error())
	var be *role.BindError
	require.ErrorAs(t, err, &be)
	require.Equal(t, "greet", be.Role)
	require.Equal(t, "web-1", be.Node, "the first occurrence, as it was")
	var ps *graph.Problems
	require.ErrorAs(t, err, &ps)
	require.Len(t, ps.List, 1)
	require.Len(t, ps.List[0].Errs, 100)
	require.Len(t, ps.List[0].Nodes, 100)
	require.Equal(t, "web-2", ps.List[0].Nodes[1], "natural order")

	// Distinct causes found together are one line each.
	type AOut struct{ V string }
	type WantIn struct{ A role.Same[AOut] }
	want := role.Func(role.Meta{Name: "want"}, func(ctx context.Context, rc *role.Context, _ WantIn) (struct{}, error) { return struct{}{}, nil })
	lost := role.Func(role.Meta{Name: "lost", Requires: []string{"nope"}}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	d = graph.NewDeployment("web")
	d.Bind(d.Pool("web", ns...), role.Of(want))
	d.Bind(d.Pool("x", &provider.Node{Name: "x1"}), role.Of(lost))
	_, err = graph.NewPlan(context.Background(), d, memStore(t))
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Equal(t, []string{
		"graph: planning web: 2 problems:",
		`  role "want" on web-1 … web-100 (100 nodes): input A (role.Same[graph_test.AOut]): no role produced it; looked at: outputs of type graph_test.AOut on each node`,
		`  role "lost" on node x1 requires role "nope", which is not bound on node x1 or to the deployment; bind it, or fix the name in Meta.Requires`,
	}, lines)
	require.ErrorAs(t, err, &be)
	require.Equal(t, "want", be.Role)
	require.ErrorAs(t, err, &ps)
	require.Len(t, ps.List, 2)
	require.Empty(t, ps.List[1].Nodes, "graph's own messages name their nodes")
}

// The same failure of a role on many nodes is one problem of Apply's
// error, which still errors.As to *NodeRoleError.
func TestSameApplyFailureOnManyNodesIsOneProblem(t *testing.T) {
	fail := role.Func(role.Meta{Name: "fail"}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, fmt.Errorf("disk full on %s", rc.Node().Name)
	})
	d := graph.NewDeployment("web")
	d.Bind(d.Pool("web", nodes("web-1", "web-2", "web-3", "web-4")...), role.Of(fail))
	p, err := graph.NewPlan(context.Background(), d, memStore(t))
	require.NoError(t, err)
	_, err = graph.Apply(context.Background(), p, graph.Options{})
	require.Equal(t, "graph: apply of web: fail@<node> failed after 1 attempt(s): disk full on <node> — on web-1 … web-4 (4 nodes)", err.Error())
	var nre *graph.NodeRoleError
	require.ErrorAs(t, err, &nre)
	require.Regexp(t, `^fail@web-[1-4]$`, nre.ID, "the first to fail")
	var ps *graph.Problems
	require.ErrorAs(t, err, &ps)
	require.Len(t, ps.List[0].Errs, 4)
}
