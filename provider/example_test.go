package provider_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/masonops/mason/provider"
)

// Every controller derives the same node ID from the deployment and node
// names, so creating the node twice finds the first one.
func ExampleStableID() {
	id := provider.StableID("swarm", "manager-0")
	fmt.Println(id == provider.StableID("swarm", "manager-0"), len(id))
	// Output: true 16
}

// The interface address rule: a private IPv4 address wins, unless the
// caller names the networks it can reach.
func ExamplePickInterfaceAddr() {
	private := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("172.16.0.9")}
	public := []netip.Addr{netip.MustParseAddr("203.0.113.7")}
	fmt.Println(provider.PickInterfaceAddr(private, public))
	fmt.Println(provider.PickInterfaceAddr(private, public, netip.MustParsePrefix("203.0.113.0/24")))
	// Output:
	// 10.0.0.5
	// 203.0.113.7
}

// VM is what a hypothetical driver keeps about its nodes.
type VM struct{ MoRef string }

// Node.As reaches a driver's own description of a node without a type
// switch on Extra.
func ExampleNode_As() {
	n := &provider.Node{ID: "n1", Extra: &VM{MoRef: "vm-42"}}
	var vm *VM
	if n.As(&vm) {
		fmt.Println(vm.MoRef)
	}
	// Output: vm-42
}

// A unit is what a role starts on a node. On a machine with systemd it is
// installed as this file, the one an operator would write by hand; in a
// lab node the lab's supervisor runs the same definition.
func ExampleUnit_SystemdFile() {
	u := provider.Unit{
		Name:         "etcd",
		Description:  "etcd member",
		Command:      []string{"/usr/bin/etcd", "--config-file", "/etc/etcd/etcd.yml"},
		Restart:      provider.RestartOnFailure,
		RestartDelay: 5 * time.Second,
		LimitNOFILE:  40000,
	}
	if err := u.Validate(); err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(u.SystemdFile()))
	// Output:
	// # Installed by mason; changes here are overwritten.
	// [Unit]
	// Description=etcd member
	//
	// [Service]
	// ExecStart=/usr/bin/etcd --config-file /etc/etcd/etcd.yml
	// Restart=on-failure
	// RestartSec=5
	// TimeoutStopSec=90
	// LimitNOFILE=40000
	//
	// [Install]
	// WantedBy=multi-user.target
}

// A node whose transport cannot run units is a clear error, found before
// anything is installed.
func ExampleUnitsOf() {
	n := &provider.Node{Name: "n2", Provider: "custom"}
	_, err := provider.UnitsOf(n)
	fmt.Println(errors.Is(err, provider.ErrNoCapability))
	fmt.Println(err)
	// Output:
	// true
	// node n2 (provider custom) does not offer provider.Units: its transport (no transport) does not implement it; use a provider whose nodes do, or a role that does not need it
}

// rack is a driver for a rack with a fixed number of slots: it knows its
// capacity, so impossible requests are refused before anything is made.
type rack struct {
	slots int
	nodes map[string]*provider.Node
}

func (r *rack) Name() string { return "rack" }
func (r *rack) Create(_ context.Context, s provider.NodeSpec) (*provider.Node, error) {
	n := &provider.Node{ID: s.ID, Name: s.Name, Provider: "rack", State: provider.StateRunning, Labels: s.Labels}
	r.nodes[s.ID] = n
	return n, nil
}
func (r *rack) Get(_ context.Context, id string) (*provider.Node, error) {
	if n, ok := r.nodes[id]; ok {
		return n, nil
	}
	return nil, provider.ErrNotFound
}
func (r *rack) List(context.Context) ([]*provider.Node, error) {
	var out []*provider.Node
	for _, n := range r.nodes {
		out = append(out, n)
	}
	return out, nil
}
func (r *rack) Delete(_ context.Context, id string) error { delete(r.nodes, id); return nil }

// Capacity implements provider.CapacityReporter.
func (r *rack) Capacity(context.Context) (provider.Capacity, error) {
	return provider.Capacity{Free: r.slots - len(r.nodes), Limit: fmt.Sprintf("%d slots", r.slots)}, nil
}

// A front end checks the whole request against the provider's capacity
// before it creates the first node; nodes are stamped with their
// deployment, so they can be found again without any state.
func ExampleProvider_CheckCapacity() {
	ctx := context.Background()
	p := provider.New(&rack{slots: 3, nodes: map[string]*provider.Node{}})
	_, _ = p.Create(ctx, provider.NodeSpec{ID: "n1", Deployment: "etcd"})

	err := p.CheckCapacity(ctx, []string{"n1", "n2", "n3", "n4"})
	fmt.Println(errors.Is(err, provider.ErrNoCapacity), err)
	fmt.Println(p.CheckCapacity(ctx, []string{"n1", "n2", "n3"}))

	mine, _ := p.DeploymentNodes(ctx, "etcd")
	fmt.Println(len(mine), mine[0].Deployment())
	// Output:
	// true rack: 3 new nodes requested but only 2 fit (3 slots): ask for fewer or give the provider more room: not enough capacity
	// <nil>
	// 1 etcd
}
