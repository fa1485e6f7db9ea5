package provider_test

import (
	"fmt"
	"net/netip"

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
