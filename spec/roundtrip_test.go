package spec_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
)

func nodes3() []*provider.Node {
	var out []*provider.Node
	for i, n := range []string{"n1", "n2", "n3"} {
		out = append(out, &provider.Node{ID: "rt-" + n, Name: n, InterfaceAddr: netip.AddrFrom4([4]byte{10, 78, 0, byte(11 + i)})})
	}
	return out
}

// goRoundTrip is testdata/good_roundtrip.hcl written in Go.
func goRoundTrip(nodes []*provider.Node) *graph.Deployment {
	d := graph.NewDeployment("rt")
	members := d.Pool("members", nodes...)
	d.Bind(nil, role.Of(caRole))
	d.Bind(members, role.Of(peerURLRole))
	d.Bind(members, role.Of(memberRole))
	d.Bind(members, role.Of(managerRole))
	d.Bind(members, role.Of(workerRole))
	graph.Set(d, attr.New[string]("test.token"), "prod-7")
	graph.Set(d, attr.New[time.Duration]("test.timeout"), 10*time.Second)
	graph.Set(d, attr.New[[]string]("swarm.labels"), []string{"a", "b"})
	d.UseKEK(specKEK)
	return d
}

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

func specDeployment(t *testing.T, reg *spec.Registry, path string, opts spec.Options, nodes []*provider.Node) *graph.Deployment {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	s, diags := spec.Load(reg, []spec.File{{Name: path, Src: src}}, opts)
	require.False(t, diags.HasErrors(), spec.Format(diags))
	d, err := s.Deployment(nodes)
	require.NoError(t, err)
	d.UseKEK(specKEK)
	return d
}

// etcdServices are the services the etcd example's roles use (they
// declare a role.Uses[pki.Issuer] input): a real authority on an
// in-memory store.
func etcdServices(t *testing.T) *role.Services {
	t.Helper()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	mgr, err := pki.NewManager(st, pki.Options{KEK: make([]byte, 32)})
	require.NoError(t, err)
	svcs := role.NewServices()
	role.Provide[pki.Issuer](svcs, mgr)
	return svcs
}

// TestRoundTrip: the same deployment in Go and in HCL plans the same, and
// once the Go one has run, the HCL one is converged — same attribute
// values, same wiring, same input digests. Changing a variable re-runs
// exactly the node-roles that read it.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	nodes := nodes3()

	goPlan, err := graph.NewPlan(ctx, goRoundTrip(nodes), st)
	require.NoError(t, err)
	hclPlan, err := graph.NewPlan(ctx, specDeployment(t, testRegistry(), "testdata/good_roundtrip.hcl", spec.Options{}, nodes), st)
	require.NoError(t, err)
	require.Equal(t, steps(goPlan), steps(hclPlan))
	require.Equal(t, 11, hclPlan.Count(graph.ActionRun))

	res, err := graph.Apply(ctx, goPlan, graph.Options{Parallelism: 2})
	require.NoError(t, err)
	require.Equal(t, 11, res.Count(graph.StateSucceeded))

	hclPlan, err = graph.NewPlan(ctx, specDeployment(t, testRegistry(), "testdata/good_roundtrip.hcl", spec.Options{}, nodes), st)
	require.NoError(t, err)
	require.Equal(t, 11, hclPlan.Count(graph.ActionSkip), hclPlan.String())

	changed, err := graph.NewPlan(ctx, specDeployment(t, testRegistry(), "testdata/good_roundtrip.hcl",
		spec.Options{Vars: map[string]string{"token": "prod-8"}}, nodes), st)
	require.NoError(t, err)
	var ran []string
	for _, s := range changed.Steps {
		if s.Action == graph.ActionRun {
			ran = append(ran, s.ID+": "+s.Reason)
		}
	}
	require.Equal(t, []string{"member@n1: input Token changed", "member@n2: input Token changed", "member@n3: input Token changed"}, ran)
}

// TestRoundTripEtcd: the etcd example's roles, bound by a spec, plan the
// same as the example's Go deployment.
func TestRoundTripEtcd(t *testing.T) {
	ctx := context.Background()
	reg := spec.NewRegistry()
	require.NoError(t, reg.Roles(role.Of(etcd.CA{}), role.Of(etcd.Operator{}), role.Of(etcd.Bootstrap{}), role.Of(etcd.Verify{}), role.Of(etcd.PeerURL{}), role.Of(etcd.MemberCert{}), role.Of(etcd.Member{})))
	reg.Declare(etcd.ClusterToken, etcd.Domain, etcd.OperatorDir, etcd.Binary)
	nodes := nodes3()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	svcs := etcdServices(t)
	goDep := etcd.Deployment("etcd", nodes...)
	goDep.UseServices(svcs)
	goPlan, err := graph.NewPlan(ctx, goDep, st, graph.SkipChecks())
	require.NoError(t, err)
	hclDep := specDeployment(t, reg, "testdata/good_etcd.hcl", spec.Options{}, nodes)
	hclDep.UseServices(svcs)
	hclPlan, err := graph.NewPlan(ctx, hclDep, st, graph.SkipChecks())
	require.NoError(t, err)
	require.Equal(t, steps(goPlan), steps(hclPlan))
	require.Len(t, hclPlan.Steps, 4+3*3)
}

// TestReadmeSpec: the README's complete example loads and plans against
// the etcd example's roles.
func TestReadmeSpec(t *testing.T) {
	reg := spec.NewRegistry()
	require.NoError(t, reg.Roles(role.Of(etcd.CA{}), role.Of(etcd.Operator{}), role.Of(etcd.Bootstrap{}), role.Of(etcd.Verify{}), role.Of(etcd.PeerURL{}), role.Of(etcd.MemberCert{}), role.Of(etcd.Member{})))
	reg.Declare(etcd.ClusterToken, etcd.Domain, etcd.OperatorDir, etcd.Binary)
	reg.Provider("lab", func(ctx context.Context, s spec.Settings) (*provider.Provider, error) {
		return nil, fmt.Errorf("not opened in this test")
	})
	reg.Service("dns", func(ctx context.Context, s spec.Settings, svcs *role.Services) error { return nil })
	d := specDeployment(t, reg, "testdata/good_readme.hcl", spec.Options{Env: []string{"MASON_VAR_members=5"}}, nil)
	d.UseServices(etcdServices(t))
	p, err := graph.NewPlan(context.Background(), d, mem.New(), graph.SkipChecks())
	require.NoError(t, err)
	require.Len(t, p.Steps, 4+3*5)
	v, ok := d.Attrs().Lookup("etcd.cluster_token")
	require.True(t, ok)
	require.Equal(t, "prod-5", v.Any())
	require.Equal(t, "deployment (testdata/good_readme.hcl:42)", v.Source.String())
}
