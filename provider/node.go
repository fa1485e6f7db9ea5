package provider

import (
	"net"
	"net/netip"
	"reflect"
)

// Node is a machine as roles see it, whatever provider made it.
//
// Drivers fill in what they know; fields they cannot know stay zero. Roles
// should reach the node through [Node.InterfaceAddr] and [Node.Transport].
// A Node is a snapshot: Get it again from its [Provider] to see changes.
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
	// State is the node's lifecycle state as the provider last saw it.
	State State

	// InterfaceAddr is the address mason and other nodes use to reach this
	// node. Drivers choose it with [PickInterfaceAddr] unless they document
	// a better rule.
	InterfaceAddr netip.Addr
	// PrivateAddrs and PublicAddrs list every address the node has.
	PrivateAddrs []netip.Addr
	PublicAddrs  []netip.Addr
	// MACs lists the hardware addresses of the node's network interfaces,
	// in the order of the interfaces.
	MACs []net.HardwareAddr

	// Login is the user a transport logs in as, once known.
	Login Login
	// Flavor is the node's size.
	Flavor Flavor
	// Image is what the node was made from.
	Image Image

	// Labels are user-chosen key/value pairs (pool, zone, role hints).
	Labels map[string]string
	// Facts are values discovered about the node (kernel, OS release).
	Facts map[string]string

	// Transport runs commands on the node and copies files. It may be nil
	// for a node that is not (yet) reachable.
	Transport Transport

	// Extra is the driver's own description of the node (for example
	// *lab.NodeInfo). Reach it through [Node.As] rather than a type switch,
	// so code keeps compiling when a driver changes its representation.
	Extra any
}

// Deployment returns the deployment the node was stamped with at creation
// (its LabelDeployment label), or "".
func (n *Node) Deployment() string {
	if n == nil {
		return ""
	}
	return n.Labels[LabelDeployment]
}

// As is the escape hatch to driver-specific details, in the style of the
// Go CDK: target must be a non-nil pointer; if the node's Extra value (or
// the value Extra itself offers through an As method) can be stored in
// *target, As stores it and reports true. Each driver documents the types
// it supports.
//
//	var info *lab.NodeInfo
//	if n.As(&info) { fmt.Println(info.PID) }
func (n *Node) As(target any) bool {
	if n == nil || n.Extra == nil || target == nil {
		return false
	}
	if a, ok := n.Extra.(interface{ As(any) bool }); ok && a.As(target) {
		return true
	}
	return assignTo(n.Extra, target)
}

// assignTo stores v in *target when v's type is assignable to *target's.
func assignTo(v, target any) bool {
	tv := reflect.ValueOf(target)
	if tv.Kind() != reflect.Pointer || tv.IsNil() {
		return false
	}
	elem := tv.Elem()
	vv := reflect.ValueOf(v)
	if !vv.Type().AssignableTo(elem.Type()) {
		return false
	}
	elem.Set(vv)
	return true
}

// Login says which user a transport logs in as.
type Login struct {
	// User is the user that worked (or the only one to try).
	User string
	// Fallbacks are tried in order when User is empty or refused, for
	// images whose default user varies ("ubuntu", "ec2-user", "root").
	Fallbacks []string
}

// Candidates returns User followed by the fallbacks, without duplicates or
// empty names.
func (l Login) Candidates() []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range append([]string{l.User}, l.Fallbacks...) {
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	return out
}

// Flavor is the size of a node. Zero fields are unknown.
type Flavor struct {
	VCPUs   int
	RAMMiB  int
	DiskGiB int
}

// Image names what a node was made from (a VM template, an OS image, the
// host's own root file system for lab nodes).
type Image struct {
	ID   string
	Name string
}

// State is a node's lifecycle state.
type State string

// Node states. Only a StateRunning node can be [Ready].
const (
	StateUnknown  State = ""
	StatePending  State = "pending"  // being created
	StateRunning  State = "running"  // up; its transport may answer
	StateStopped  State = "stopped"  // exists but not running
	StateFailed   State = "failed"   // broken; delete and create it again
	StateDeleting State = "deleting" // being removed
)

// PickInterfaceAddr applies mason's rule for a node's interface address,
// the one address others use to reach it:
//
//  1. if within is non-empty, the first address (private ones first, then
//     public, each in the order given) inside the first prefix of within
//     that contains any address;
//  2. otherwise the first private IPv4 address, then the first private IPv6
//     address, then the first public IPv4, then the first public IPv6.
//
// Loopback, link-local and unspecified addresses are never chosen. It
// returns the zero Addr when nothing qualifies.
func PickInterfaceAddr(private, public []netip.Addr, within ...netip.Prefix) netip.Addr {
	all := append(append([]netip.Addr(nil), private...), public...)
	usable := func(a netip.Addr) bool {
		return a.IsValid() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsUnspecified()
	}
	for _, p := range within {
		for _, a := range all {
			if usable(a) && p.Contains(a.Unmap()) {
				return a
			}
		}
	}
	if len(within) > 0 {
		return netip.Addr{}
	}
	for _, set := range [][]netip.Addr{private, public} {
		for _, v4 := range []bool{true, false} {
			for _, a := range set {
				if usable(a) && a.Unmap().Is4() == v4 {
					return a
				}
			}
		}
	}
	return netip.Addr{}
}
