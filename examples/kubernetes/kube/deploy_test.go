package kube

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/netsvc/ipam"
	"github.com/masonops/mason/netsvc/lb"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

func fakeNodes(prefix string, n, first int) []*provider.Node {
	var out []*provider.Node
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		out = append(out, &provider.Node{ID: name, Name: name, InterfaceAddr: netip.AddrFrom4([4]byte{10, 99, 0, byte(first + i)})})
	}
	return out
}

// TestDeploymentPlans checks the wiring before anything runs: every input
// of every role is satisfied, and the plan has each role where it belongs.
func TestDeploymentPlans(t *testing.T) {
	for _, size := range []struct{ cps, workers int }{{3, 2}, {1, 2}} {
		d := Deployment("plan", fakeNodes("cp", size.cps, 10), fakeNodes("w", size.workers, 20))
		graph.Set(d, LBAddr, "10.99.0.1")
		d.UseServices(planServices(t))
		kek, err := seal.Generate()
		require.NoError(t, err)
		d.UseKEK(kek) // the encryption key is sealed in the journal
		p, err := graph.NewPlan(context.Background(), d, mem.New())
		require.NoError(t, err)
		perNode := 0
		for _, s := range p.Steps {
			require.Equal(t, graph.ActionRun, s.Action, s.ID)
			if s.Node == "cp1" {
				perNode++
			}
		}
		_, ok := p.Step("kube-smoke-test@cp1")
		require.True(t, ok, "the smoke test runs once, on the first control-plane node:\n%s", p)
		_, ok = p.Step("kube-apiserver@cp1")
		require.True(t, ok)
		_, ok = p.Step("kube-kubelet@w2")
		require.True(t, ok)
		_, ok = p.Step("kube-kubelet@cp1")
		require.False(t, ok, "no kubelet on control-plane nodes")
		t.Logf("%d+%d: %d node-roles, %d on cp1", size.cps, size.workers, len(p.Steps), perNode)
	}
}

// planServices registers the services the roles use (planning checks that
// they are there; nothing is called).
func planServices(t *testing.T) *role.Services {
	st := mem.New()
	mgr, err := pki.NewManager(st, pki.Options{KEK: make([]byte, 32)})
	require.NoError(t, err)
	dns, err := authdns.New(st, nil)
	require.NoError(t, err)
	balancer, err := lb.New(context.Background(), st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = balancer.Close() })
	svcs := role.NewServices()
	role.Provide[pki.Issuer](svcs, mgr)
	role.Provide[netsvc.DNS](svcs, dns)
	role.Provide[netsvc.IPAM](svcs, ipam.New(st, nil))
	role.Provide[netsvc.LoadBalancer](svcs, balancer)
	role.Provide[Source](svcs, GoBuild{})
	return svcs
}
