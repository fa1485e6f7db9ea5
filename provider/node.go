package provider

import (
	"net/netip"
)

// Node is a machine as roles see it, whatever provider made it.
//
// Drivers fill in what they know; fields they cannot know stay zero. Roles
// should reach the node through [Node.InterfaceAddr] and [Node.Transport].
type Node struct {
	// ID is stable and chosen before the node is created, so creating the
	// same node twice finds the first one instead of making a second.
	ID string
	// Name is the node's hostname within its deployment ("n1", "etcd-0").
	Name string
	// Provider names the driver that made the node ("lab", "ssh", "vsphere").
	Provider string
	// Location is provider-specific placement (a lab name, a datacenter).
	Location string

	// InterfaceAddr is the address mason and other nodes use to reach this
	// node. Drivers document how they choose it.
	InterfaceAddr netip.Addr
	// PrivateAddrs and PublicAddrs list every address the node has.
	PrivateAddrs []netip.Addr
	PublicAddrs  []netip.Addr

	// Labels are user-chosen key/value pairs (pool, zone, role hints).
	Labels map[string]string
	// Facts are values discovered about the node (kernel, OS release).
	Facts map[string]string

	// Transport runs commands on the node and copies files. It may be nil
	// for a node that is not (yet) reachable.
	Transport Transport
}
