package graph_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// registry is a service the application provides.
type registry interface{ Register(name string) }

type memRegistry struct {
	mu    sync.Mutex
	names []string
}

func (r *memRegistry) Register(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, name)
}

// supervisor is a capability some nodes' transports offer.
type supervisor interface{ Supervise(unit string) string }

// plainTransport runs nothing; supervisingTransport also supervises.
type plainTransport struct{}

func (plainTransport) Run(context.Context, provider.Command) (provider.Result, error) {
	return provider.Result{}, errors.New("plainTransport runs nothing")
}
func (plainTransport) Put(context.Context, string, io.Reader, provider.FileOptions) error { return nil }
func (plainTransport) Get(context.Context, string) ([]byte, error)                        { return nil, nil }

type supervisingTransport struct{ plainTransport }

func (supervisingTransport) Supervise(unit string) string { return "supervised " + unit }

type usesIn struct {
	Registry role.Uses[registry]
	Units    role.Uses[supervisor]
}

// A role's Uses inputs are filled from the deployment's services and from
// its node's transport; a missing one fails the plan, naming the role, the
// node and the field; a node that does not exist yet is checked when it
// does.
func TestUsesServicesAndCapabilities(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	daemon := role.Of(role.Func(role.Meta{Name: "daemon"}, func(ctx context.Context, rc *role.Context, in usesIn) (COut, error) {
		in.Registry.Value.Register(rc.Node().Name)
		mu.Lock()
		defer mu.Unlock()
		got[rc.Node().Name] = in.Units.Value.Supervise("etcd.service")
		return COut{V: "ok"}, nil
	}))
	announce := role.Of(role.Func(role.Meta{Name: "announce", Scope: role.ScopeService}, func(ctx context.Context, rc *role.Context, in struct{ R role.Uses[registry] }) (COut, error) {
		in.R.Value.Register("deployment")
		return COut{}, nil
	}))
	build := func(svcs *role.Services, ns ...*provider.Node) *graph.Deployment {
		d := graph.NewDeployment("uses")
		d.Bind(d.Pool("p", ns...), daemon)
		d.Bind(nil, announce)
		d.UseServices(svcs)
		return d
	}

	t.Run("filled from services and transports", func(t *testing.T) {
		reg := &memRegistry{}
		svcs := role.NewServices()
		role.Provide[registry](svcs, reg)
		d := build(svcs, &provider.Node{Name: "n1", Transport: supervisingTransport{}}, &provider.Node{Name: "n2", Transport: supervisingTransport{}})
		p, res, err := planApply(t, d, memStore(t), graph.Options{})
		require.NoError(t, err)
		require.Equal(t, 3, res.Count(graph.StateSucceeded))
		require.Equal(t, map[string]string{"n1": "supervised etcd.service", "n2": "supervised etcd.service"}, got)
		require.ElementsMatch(t, []string{"n1", "n2", "deployment"}, reg.names)
		bs, err := p.BindingsOf("daemon@n1")
		require.NoError(t, err)
		require.Equal(t, "Registry <- service graph_test.registry (registered with role.Provide)", bs[0].String())
		require.Equal(t, "Units <- service graph_test.supervisor (capability of node n1's transport)", bs[1].String())
	})

	t.Run("missing at plan time", func(t *testing.T) {
		d := build(role.NewServices(), &provider.Node{Name: "n1", Transport: supervisingTransport{}}, &provider.Node{Name: "n2", Transport: plainTransport{}})
		_, err := graph.NewPlan(context.Background(), d, memStore(t))
		require.Error(t, err)
		msg := err.Error()
		require.Contains(t, msg, `role "daemon" on n1: input Registry (role.Uses[graph_test.registry]): no service of type graph_test.registry is registered, and node n1's transport (graph_test.supervisingTransport) does not implement it`)
		require.Contains(t, msg, `role "daemon" on n2: input Units (role.Uses[graph_test.supervisor]): no service of type graph_test.supervisor is registered, and node n2's transport (graph_test.plainTransport) does not implement it`)
		require.Contains(t, msg, `role "announce": input R (role.Uses[graph_test.registry]): no service of type graph_test.registry is registered; the application must call role.Provide[graph_test.registry]`)
		var be *role.BindError
		require.ErrorAs(t, err, &be)
		require.NotContains(t, msg, `daemon" on n1: input Units`, "n1's transport supervises")
	})

	t.Run("node not created yet", func(t *testing.T) {
		reg := &memRegistry{}
		svcs := role.NewServices()
		role.Provide[registry](svcs, reg)
		d := build(svcs, &provider.Node{Name: "n1"})
		mu.Lock()
		clear(got)
		mu.Unlock()
		p, err := graph.NewPlan(context.Background(), d, memStore(t))
		require.NoError(t, err, "the capability is checked once the node exists")
		res, err := graph.Apply(context.Background(), p, graph.Options{})
		require.ErrorContains(t, err, `role "daemon" on n1: input Units (role.Uses[graph_test.supervisor]): no service of type graph_test.supervisor is registered, and node n1 has no transport that could offer it`)
		require.Equal(t, graph.StateFailed, state(t, res, "daemon@n1").State)
		require.NotContains(t, got, "n1", "the role did not run")
		require.Equal(t, []string{"deployment"}, reg.names)
	})
}
