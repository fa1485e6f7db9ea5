package vsphere_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/netsvc/ipam"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/vsphere"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/bolt"
)

// ARecord is what the dns-a role publishes for its node.
type ARecord struct {
	FQDN string
	Addr netip.Addr
}

type indexIn struct {
	Hosts role.All[ARecord]
	DNS   role.Uses[netsvc.DNS]
}

type indexOut struct{ Targets int }

// dnsRoles are roles that need no shell: one registers its node's A
// record, the other publishes an SRV set naming every node.
func dnsRoles(zone string) (*role.Def, *role.Def) {
	a := role.Func(role.Meta{Name: "dns-a", Version: "1"},
		func(ctx context.Context, rc *role.Context, in struct{ DNS role.Uses[netsvc.DNS] }) (ARecord, error) {
			d := in.DNS.Value
			n := rc.Node()
			if !n.InterfaceAddr.IsValid() {
				return ARecord{}, fmt.Errorf("node %s has no interface address", n.Name)
			}
			rs := netsvc.RecordSet{Name: n.Name, Type: netsvc.TypeA, Values: []string{n.InterfaceAddr.String()}}
			if err := d.Upsert(ctx, zone, rs); err != nil {
				return ARecord{}, err
			}
			return ARecord{FQDN: netsvc.Fqdn(zone, n.Name), Addr: n.InterfaceAddr}, nil
		})
	index := role.Func(role.Meta{Name: "dns-srv", Version: "1", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, in indexIn) (indexOut, error) {
			d := in.DNS.Value
			var vals []string
			for _, h := range in.Hosts {
				vals = append(vals, "10 10 22 "+h.Value.FQDN)
			}
			sort.Strings(vals)
			err := d.Upsert(ctx, zone, netsvc.RecordSet{Name: "_ssh._tcp", Type: netsvc.TypeSRV, Values: vals})
			return indexOut{Targets: len(vals)}, err
		})
	return role.Of(a), role.Of(index)
}

// A graph deployment on vSphere nodes runs end to end against the
// simulator: the provider allocates VMs whose fixed addresses come from
// netsvc IPAM, and roles publish every node in a real authoritative DNS
// server, queried over UDP. Growing the pool re-runs exactly what changed.
func TestGraphDeploymentOnVSphere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vc, caFile, stopSim := startSimulator(ctx)
	t.Cleanup(stopSim)

	st, err := bolt.Open(filepath.Join(t.TempDir(), "mason.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	addrs := ipam.New(st, nil)
	gw := netip.MustParseAddr("10.78.0.1")
	require.NoError(t, addrs.AddRange(ctx, netsvc.Range{Name: "vms", Prefix: netip.MustParsePrefix("10.78.0.0/24"), Reserved: []netip.Addr{gw}}))

	const zone = "lab.example."
	dnsSrv, err := authdns.New(st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dnsSrv.Close() })
	require.NoError(t, dnsSrv.AddZone(ctx, authdns.Zone{Name: zone}))
	dnsAddr, err := dnsSrv.Listen("127.0.0.1:0")
	require.NoError(t, err)

	d, err := vsphere.Open(ctx, vsphere.Config{
		URL: vc, Username: "admin", Password: "example-password", CAFile: caFile,
		Template: "/DC0/vm/DC0_C0_RP0_VM0",
		Folder:   "/DC0/vm/mason/graph",
		// Fixed addresses from IPAM, owned by the node ID: a retried
		// Create gets the same address back.
		AssignIP: func(ctx context.Context, spec provider.NodeSpec) (vsphere.IPConfig, error) {
			a, err := addrs.Allocate(ctx, netsvc.Request{Range: "vms", Owner: "node/" + spec.ID})
			if err != nil {
				return vsphere.IPConfig{}, err
			}
			return vsphere.IPConfig{Addr: netip.PrefixFrom(a.Addr, 24), Gateway: gw}, nil
		},
		PollInterval: 5 * time.Millisecond,
	})
	require.NoError(t, err)
	p := d.Provider()
	t.Cleanup(func() { _ = p.Close() })

	create := func(names ...string) []*provider.Node {
		out := make([]*provider.Node, len(names))
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i], errs[i] = p.Create(ctx, provider.NodeSpec{ID: provider.StableID("graph", name), Name: name})
			}()
		}
		wg.Wait()
		for i := range names {
			require.NoError(t, errs[i])
			id := out[i].ID
			t.Cleanup(func() { _ = p.Delete(context.Background(), id) })
		}
		return out
	}

	dep := graph.NewDeployment("vsphere-dns")
	svcs := role.NewServices()
	role.Provide[netsvc.DNS](svcs, dnsSrv)
	dep.UseServices(svcs)
	pool := dep.Pool("web", create("web-0", "web-1", "web-2")...)
	a, index := dnsRoles(zone)
	dep.Bind(pool, a)
	dep.Bind(nil, index)

	plan, err := graph.NewPlan(ctx, dep, st)
	require.NoError(t, err)
	res, err := apply(t, ctx, plan)
	require.NoError(t, err)
	require.Equal(t, 4, res.Count(graph.StateSucceeded))

	allocs, err := addrs.Allocations(ctx, "vms")
	require.NoError(t, err)
	require.Len(t, allocs, 3)
	for _, name := range []string{"web-0", "web-1", "web-2"} {
		n := dep.Node(name)
		got := lookup(t, dnsAddr, name+"."+zone, dns.TypeA)
		require.Equal(t, []string{n.InterfaceAddr.String()}, got, "A record of %s", name)
		require.Equal(t, "10.78.0.", n.InterfaceAddr.String()[:8], "the address IPAM gave the node")
	}
	require.Len(t, lookup(t, dnsAddr, "_ssh._tcp."+zone, dns.TypeSRV), 3)

	// Re-running the converged deployment changes nothing.
	plan, err = graph.NewPlan(ctx, dep, st)
	require.NoError(t, err)
	for _, s := range plan.Steps {
		require.Equal(t, graph.ActionSkip, s.Action, "%s: %s", s.ID, s.Reason)
	}

	// A fourth VM: its A record is new, and the SRV set re-runs because its
	// input gained a host; the other nodes' roles are skipped.
	pool.Add(create("web-3")...)
	plan, err = graph.NewPlan(ctx, dep, st)
	require.NoError(t, err)
	var runs []string
	for _, s := range plan.Steps {
		if s.Action != graph.ActionSkip {
			runs = append(runs, s.ID)
		}
	}
	sort.Strings(runs)
	require.Equal(t, []string{"dns-a@web-3", "dns-srv"}, runs)
	res, err = apply(t, ctx, plan)
	require.NoError(t, err)
	require.Equal(t, 2, res.Count(graph.StateSucceeded))
	require.Len(t, lookup(t, dnsAddr, "_ssh._tcp."+zone, dns.TypeSRV), 4)
	require.Equal(t, []string{dep.Node("web-3").InterfaceAddr.String()}, lookup(t, dnsAddr, "web-3."+zone, dns.TypeA))
}

// apply runs the plan, failing the test (instead of hanging the package
// until go test's timeout) if Apply does not return after ctx ends.
func apply(t *testing.T, ctx context.Context, plan *graph.Plan) (*graph.Result, error) {
	t.Helper()
	type out struct {
		res *graph.Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: 4})
		ch <- out{res, err}
	}()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
	}
	select {
	case o := <-ch:
		return o.res, o.err
	case <-time.After(10 * time.Second):
		t.Fatalf("graph.Apply did not return within 10s after its context ended (%v)", ctx.Err())
		return nil, nil
	}
}

// lookup asks the DNS server over UDP and returns the answers' data.
func lookup(t *testing.T, server, name string, qtype uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&dns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(m, server)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s %s", name, dns.TypeToString[qtype])
	var out []string
	for _, rr := range r.Answer {
		switch x := rr.(type) {
		case *dns.A:
			out = append(out, x.A.String())
		case *dns.SRV:
			out = append(out, x.Target)
		}
	}
	return out
}
