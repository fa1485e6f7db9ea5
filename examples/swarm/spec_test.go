package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
)

type stepView struct {
	ID, Role, Node, Reason string
	Action                 graph.Action
	WaitsFor               []string
}

func steps(p *graph.Plan) []stepView {
	var out []stepView
	for _, s := range p.Steps {
		out = append(out, stepView{ID: s.ID, Role: s.Role, Node: s.Node, Reason: s.Reason, Action: s.Action, WaitsFor: s.WaitsFor})
	}
	return out
}

func fakeNodes(names ...string) []*provider.Node {
	var out []*provider.Node
	for i, n := range names {
		out = append(out, &provider.Node{ID: provider.StableID(swarm.DeploymentName, n), Name: n,
			InterfaceAddr: netip.AddrFrom4([4]byte{10, 78, 0, byte(10 + i)})})
	}
	return out
}

// TestSpecPlansLikeTheGoDeployment: swarm.hcl, loaded through the
// registry the front end uses, plans exactly what swarm.Deployment plans —
// the same node-roles, edges and reasons — for 1+2, 3+3 with a leaving
// node, and the spec's node IDs are the ones Up creates.
func TestSpecPlansLikeTheGoDeployment(t *testing.T) {
	ctx := context.Background()
	src, err := os.ReadFile("swarm.hcl")
	require.NoError(t, err)
	for _, tc := range []struct {
		managers, workers int
		leaving           []string
	}{{1, 2, nil}, {3, 3, []string{"w4"}}} {
		t.Run(fmt.Sprintf("%d+%d", tc.managers, tc.workers), func(t *testing.T) {
			vars := map[string]string{"managers": fmt.Sprint(tc.managers), "workers": fmt.Sprint(tc.workers), "state_dir": "/tmp/unused"}
			if tc.leaving != nil {
				vars["leaving"] = `["w4"]`
			}
			sp, diags := spec.Load(swarm.Registry(), []spec.File{{Name: "swarm.hcl", Src: src}}, spec.Options{Vars: vars})
			require.False(t, diags.HasErrors(), spec.Format(diags))

			var names []string
			n := swarm.Nodes{}
			all := map[string]*provider.Node{}
			for i := 1; i <= tc.managers; i++ {
				node := fakeNodes(fmt.Sprintf("m%d", i))[0]
				n.Managers = append(n.Managers, node)
				names = append(names, node.Name)
			}
			for i := 1; i <= tc.workers; i++ {
				node := fakeNodes(fmt.Sprintf("w%d", i))[0]
				n.Workers = append(n.Workers, node)
				names = append(names, node.Name)
			}
			n.Services = fakeNodes("svc")
			names = append(names, "svc")
			for _, l := range tc.leaving {
				n.Leaving = append(n.Leaving, fakeNodes(l)[0])
				names = append(names, l)
			}
			var list []*provider.Node
			for _, g := range [][]*provider.Node{n.Managers, n.Workers, n.Services, n.Leaving} {
				for _, node := range g {
					all[node.Name] = node
					list = append(list, node)
				}
			}
			for _, ns := range sp.NodeSpecs() {
				require.Contains(t, all, ns.Name)
				require.Equal(t, all[ns.Name].ID, ns.ID, "the spec's node %s is the node Up creates", ns.Name)
			}
			require.Len(t, sp.NodeSpecs(), len(names))

			// Plans check that the pki service the roles use is there.
			mgr, err := pki.NewManager(mem.New(), pki.Options{KEK: bytes.Repeat([]byte{1}, 32)})
			require.NoError(t, err)
			svcs := role.NewServices()
			role.Provide[pki.Issuer](svcs, mgr)
			hd, err := sp.Deployment(list)
			require.NoError(t, err)
			hd.UseServices(svcs)
			gd := swarm.Deployment(swarm.DeploymentName, n)
			gd.UseServices(svcs)
			graph.Set(gd, swarm.OperatorDir, "/tmp/unused/operator")
			kek, err := seal.New(bytes.Repeat([]byte{1}, 32))
			require.NoError(t, err)
			gd.UseKEK(kek) // the join tokens are sealed in the journal
			hd.UseKEK(kek)
			st := mem.New()
			t.Cleanup(func() { st.Close() })
			gp, err := graph.NewPlan(ctx, gd, st, graph.SkipChecks())
			require.NoError(t, err)
			hp, err := graph.NewPlan(ctx, hd, st, graph.SkipChecks())
			require.NoError(t, err)
			require.Equal(t, steps(gp), steps(hp))
			t.Logf("%d node-roles", len(hp.Steps))
		})
	}
}
