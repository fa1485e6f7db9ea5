package spec_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
)

// Roles whose output fields carry no attr tag, or a tag with another name
// than the attributes their consumers take: spec references wire them.
type (
	refMgrIn struct {
		Seed string `attr:"mgr.seed"`
	}
	refMgrOut struct {
		Token attr.Secret[string]
		Addr  string `attr:"mgr.addr"`
		Port  int
	}
	refLabelOut struct{ Name string }
	refJoinIn   struct {
		JoinToken attr.Secret[string] `attr:"cluster.join_token"`
		Manager   string              `attr:"cluster.manager"`
		Label     string              `attr:"node.label"`
	}
)

// refRoles returns a registry with a cluster manager, a node labeler and
// a joiner, and what each joiner received.
func refRoles(t *testing.T) (*spec.Registry, func() map[string]string) {
	var mu sync.Mutex
	got := map[string]string{}
	mgr := role.Func(role.Meta{Name: "mgr", Version: "1", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, in refMgrIn) (refMgrOut, error) {
			return refMgrOut{Token: attr.Conceal("tok-" + in.Seed), Addr: rc.Node().Name + ":2377"}, nil
		})
	labeler := role.Func(role.Meta{Name: "labeler", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (refLabelOut, error) {
			return refLabelOut{Name: "label-" + rc.Node().Name}, nil
		})
	joiner := role.Func(role.Meta{Name: "joiner", Version: "1"},
		func(ctx context.Context, rc *role.Context, in refJoinIn) (struct{}, error) {
			mu.Lock()
			defer mu.Unlock()
			got[rc.Node().Name] = in.JoinToken.Reveal() + " " + in.Manager + " " + in.Label
			return struct{}{}, nil
		})
	reg := spec.NewRegistry()
	require.NoError(t, reg.Roles(role.Of(mgr), role.Of(labeler), role.Of(joiner)))
	return reg, func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]string{}
		for k, v := range got {
			out[k] = v
		}
		return out
	}
}

const refSpec = `
deployment = "refs"

variable "seed" {
  type    = string
  default = "s1"
}

pool "all" {
  nodes = ["n1", "n2", "n3"]
}

role "mgr" {
  on    = [pool.all]
  attrs = { "mgr.seed" = var.seed }
}

role "labeler" {
  on = [pool.all]
}

role "joiner" {
  on = [pool.all]
  attrs = {
    "cluster.join_token" = role.mgr.output.token   # not published by a tag
    "cluster.manager"    = role.mgr.output.addr    # tagged "mgr.addr"
    "node.label"         = role.labeler.output.name
  }
}
`

// TestReferenceRenamesOutputs loads a spec whose references wire outputs
// into attributes of other names, applies it, and changes the producer's
// output: the consumers wait for the producers, receive the values, and
// run again when the value they take changes.
func TestReferenceRenamesOutputs(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	reg, got := refRoles(t)
	nodes := []*provider.Node{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}}
	load := func(seed string) *graph.Deployment {
		s, diags := spec.Load(reg, []spec.File{{Name: "refs.hcl", Src: []byte(refSpec)}}, spec.Options{Vars: map[string]string{"seed": seed}})
		require.False(t, diags.HasErrors(), spec.Format(diags))
		d, err := s.Deployment(nodes)
		require.NoError(t, err)
		d.UseKEK(specKEK)
		return d
	}

	p, err := graph.NewPlan(ctx, load("s1"), st)
	require.NoError(t, err)
	for id, waits := range map[string][]string{
		"joiner@n1": {"labeler@n1", "mgr@n1"},
		"joiner@n3": {"labeler@n3", "mgr@n1"},
	} {
		s, ok := p.Step(id)
		require.True(t, ok, id)
		require.ElementsMatch(t, waits, s.WaitsFor, id)
	}
	res, err := graph.Apply(ctx, p, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 7, res.Count(graph.StateSucceeded))
	require.Equal(t, map[string]string{
		"n1": "tok-s1 n1:2377 label-n1",
		"n2": "tok-s1 n1:2377 label-n2",
		"n3": "tok-s1 n1:2377 label-n3",
	}, got())

	// Converged.
	p, err = graph.NewPlan(ctx, load("s1"), st)
	require.NoError(t, err)
	require.Equal(t, 7, p.Count(graph.ActionSkip), p.String())

	// A new seed changes the manager's token: it and every joiner run
	// again, the labelers do not.
	p, err = graph.NewPlan(ctx, load("s2"), st)
	require.NoError(t, err)
	s, _ := p.Step("mgr@n1")
	require.Equal(t, "input Seed changed", s.Reason)
	res, err = graph.Apply(ctx, p, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 4, res.Count(graph.StateSucceeded), "mgr@n1 and joiner@n1..n3")
	require.Equal(t, "tok-s2 n1:2377 label-n2", got()["n2"])
}

// TestReferenceTypeMismatch: a renamed output of the wrong type is a
// diagnostic at the reference, not a plan error.
func TestReferenceTypeMismatch(t *testing.T) {
	reg, _ := refRoles(t)
	src := []byte(`
deployment = "refs"
pool "all" {
  nodes = ["n1"]
}
role "mgr" {
  on    = [pool.all]
  attrs = { "mgr.seed" = "x" }
}
role "labeler" {
  on = [pool.all]
}
role "joiner" {
  on = [pool.all]
  attrs = {
    "cluster.join_token" = role.mgr.output.token
    "cluster.manager"    = role.mgr.output.addr
    "node.label"         = role.mgr.output.port
  }
}
`)
	_, diags := spec.Load(reg, []spec.File{{Name: "bad.hcl", Src: src}}, spec.Options{})
	require.True(t, diags.HasErrors())
	require.Equal(t, "bad.hcl:18:28: error: Type mismatch: Output Port of role \"mgr\" is a Go int, but attribute \"node.label\" of role \"joiner\" is a string.\n", spec.Format(diags))
}

type (
	wireCert   struct{ PEM string }
	wireSameIn struct {
		Cert role.Same[wireCert]
	}
	wireOneIn struct {
		Cert role.One[wireCert]
	}
)

// TestWiringReferencesFollowTheGraph: the loader checks role.Same and
// role.One references with the graph's own wiring rule, so what it
// accepts the graph plans, and what the graph would refuse is a
// diagnostic at the reference.
func TestWiringReferencesFollowTheGraph(t *testing.T) {
	mk := func(name string, scope role.Scope) *role.Def {
		return role.Of(role.Func(role.Meta{Name: name, Scope: scope}, func(ctx context.Context, rc *role.Context, _ struct{}) (wireCert, error) {
			return wireCert{PEM: name}, nil
		}))
	}
	same := role.Of(role.Func(role.Meta{Name: "same"}, func(ctx context.Context, rc *role.Context, in wireSameIn) (struct{}, error) { return struct{}{}, nil }))
	one := role.Of(role.Func(role.Meta{Name: "one"}, func(ctx context.Context, rc *role.Context, in wireOneIn) (struct{}, error) { return struct{}{}, nil }))
	reg := spec.NewRegistry()
	require.NoError(t, reg.Roles(mk("node-cert", role.ScopeNode), mk("cluster-cert", role.ScopeCluster), same, one))
	load := func(producer, consumer, ref string) (*spec.Spec, string) {
		src := fmt.Sprintf(`
deployment = "wiring"
pool "all" {
  nodes = ["n1", "n2"]
}
role %q {
  on = [pool.all]
}
role %q {
  on     = [pool.all]
  inputs = { Cert = %s }
}
`, producer, consumer, ref)
		s, diags := spec.Load(reg, []spec.File{{Name: "w.hcl", Src: []byte(src)}}, spec.Options{})
		return s, spec.Format(diags)
	}
	plans := func(s *spec.Spec) error {
		d, err := s.Deployment(nil)
		require.NoError(t, err)
		_, err = graph.NewPlan(context.Background(), d, mem.New())
		return err
	}

	// A node role's output on every node fills Same: loads and plans.
	s, diags := load("node-cert", "same", "role.node-cert.output")
	require.Empty(t, diags)
	require.NoError(t, plans(s))
	// A cluster role runs on n1 only: Same on n2 gets nothing.
	_, diags = load("cluster-cert", "same", "role.cluster-cert.output")
	require.Equal(t, `w.hcl:11:21: error: Output not visible to the consumer: Input Cert (role.Same[spec_test.wireCert]) takes the output of a role on the same node, but cluster role "cluster-cert" runs on node n1 only, not on node n2 (pool "all") where role "same" runs. Make the field a role.One to take its single output on every node.`+"\n", diags)
	// One takes the cluster role's single output everywhere.
	s, diags = load("cluster-cert", "one", "role.cluster-cert.output")
	require.Empty(t, diags)
	require.NoError(t, plans(s))
	// A node role on two nodes gives One two outputs: the graph refuses
	// it, and the loader says so at the reference.
	_, diags = load("node-cert", "one", "role.node-cert.output")
	require.Equal(t, `w.hcl:11:21: error: Several outputs for a single input: Input Cert (role.One[spec_test.wireCert]) takes the one output of its type in the deployment, but role "node-cert" runs on 2 nodes. Make the field a role.All, or reference a cluster or service role.`+"\n", diags)
}
