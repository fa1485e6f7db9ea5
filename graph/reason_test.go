package graph_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
)

type EndpointOut struct{ Addr string }

// Every "waits for" names exactly the producers that feed the node-role,
// and Plan.Inputs names exactly those that feed each input: the own
// node's for a Same input, every node's for an All input, the deployment's
// for a cluster or service role, what Meta.Requires names.
func TestWaitsForNamesExactlyItsProducers(t *testing.T) {
	ctx := context.Background()
	probe := role.Func(role.Meta{Name: "probe-endpoint"}, func(ctx context.Context, rc *role.Context, _ struct{}) (EndpointOut, error) {
		return EndpointOut{Addr: rc.Node().Name + ":80"}, nil
	})
	type SelfIn struct{ Self role.Same[EndpointOut] }
	self := role.Func(role.Meta{Name: "self-check"}, func(ctx context.Context, rc *role.Context, in SelfIn) (struct{}, error) {
		return struct{}{}, nil
	})
	type AllIn struct{ All role.All[EndpointOut] }
	lb := role.Func(role.Meta{Name: "lb", Scope: role.ScopeService}, func(ctx context.Context, rc *role.Context, in AllIn) (struct{}, error) {
		return struct{}{}, nil
	})
	type LeaderOut struct{ Addr string }
	type LeaderIn struct{ Self role.Same[EndpointOut] }
	leader := role.Func(role.Meta{Name: "leader", Scope: role.ScopeCluster}, func(ctx context.Context, rc *role.Context, in LeaderIn) (LeaderOut, error) {
		return LeaderOut{Addr: in.Self.Value.Addr}, nil
	})
	type FollowIn struct{ Leader role.One[LeaderOut] }
	follow := role.Func(role.Meta{Name: "follow", Requires: []string{"self-check"}}, func(ctx context.Context, rc *role.Context, in FollowIn) (struct{}, error) {
		return struct{}{}, nil
	})

	d := graph.NewDeployment("web")
	web := d.Pool("web", nodes("web-1", "web-2", "web-3", "web-4", "web-5")...)
	d.Bind(web, role.Of(probe), role.Of(self), role.Of(follow))
	d.Bind(d.Pool("lead", nodes("lead-1")...), role.Of(probe), role.Of(leader))
	d.Bind(nil, role.Of(lb))
	st := memStore(t)
	p, err := graph.NewPlan(ctx, d, st)
	require.NoError(t, err)
	_, err = graph.Apply(ctx, p, graph.Options{})
	require.NoError(t, err)

	// probe-endpoint runs again on web-2, web-3 and lead-1.
	p, err = graph.NewPlan(ctx, d, st, graph.Force("probe-endpoint@web-2", "probe-endpoint@web-3", "probe-endpoint@lead-1"))
	require.NoError(t, err)
	reasons := map[string]string{}
	for _, s := range p.Steps {
		reasons[s.ID] = s.Reason
	}
	require.Equal(t, "converged", reasons["self-check@web-1"])
	require.Equal(t, "inputs known after run (waits for probe-endpoint@web-2)", reasons["self-check@web-2"])
	require.Equal(t, "inputs known after run (waits for probe-endpoint@web-3)", reasons["self-check@web-3"])
	require.Equal(t, "inputs known after run (waits for probe-endpoint@lead-1, probe-endpoint@web-2, probe-endpoint@web-3)", reasons["lb"])
	require.Equal(t, "inputs known after run (waits for probe-endpoint@lead-1)", reasons["leader@lead-1"])
	// follow waits for the leader (One) and its own node's self-check
	// (Meta.Requires).
	require.Equal(t, "inputs known after run (waits for leader@lead-1)", reasons["follow@web-1"])
	require.Equal(t, "inputs known after run (waits for leader@lead-1, self-check@web-3)", reasons["follow@web-3"])

	// Many producers of one role are named as a range.
	p, err = graph.NewPlan(ctx, d, st, graph.Force("probe-endpoint"))
	require.NoError(t, err)
	s, _ := p.Step("lb")
	require.Equal(t, "inputs known after run (waits for probe-endpoint on lead-1 … web-5 (6 nodes))", s.Reason)
	s, _ = p.Step("self-check@web-4")
	require.Equal(t, "inputs known after run (waits for probe-endpoint@web-4)", s.Reason)

	// Provenance: each input names exactly its producers.
	inputs := func(id string) []string {
		bs, err := p.Inputs(id)
		require.NoError(t, err)
		var out []string
		for _, b := range bs {
			out = append(out, b.String())
		}
		return out
	}
	require.Equal(t, []string{"Self <- output of probe-endpoint on web-2"}, inputs("self-check@web-2"))
	require.Equal(t, []string{"Self <- output of probe-endpoint on lead-1"}, inputs("leader@lead-1"))
	require.Equal(t, []string{"Leader <- output of leader on lead-1"}, inputs("follow@web-3"))
	all := inputs("lb")
	require.Len(t, all, 1)
	for _, n := range []string{"lead-1", "web-1", "web-2", "web-3", "web-4", "web-5"} {
		require.Contains(t, all[0], fmt.Sprintf("output of probe-endpoint on %s", n))
	}
	_, err = p.Inputs("nope@web-1")
	require.ErrorContains(t, err, `no node-role "nope@web-1"`)
}
