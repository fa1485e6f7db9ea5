package kube

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/role"
)

// PodRange is the IPAM range pod subnets are allocated from.
const PodRange = "kube-pod-subnets"

// PodSubnet gives a worker its pod subnet, a /24 of kubernetes.cluster_cidr,
// from the deployment's IPAM. The allocation is the subnet's first address
// (10.150.3.0 holds 10.150.3.0/24) with the node as owner, so a re-run gets
// the same subnet and two workers never get one subnet.
type PodSubnet struct{}

// PodSubnetIn is the cluster's pod range.
type PodSubnetIn struct {
	ClusterCIDR string `attr:"kubernetes.cluster_cidr"`
	IPAM        role.Uses[netsvc.IPAM]
}

// PodSubnetOut is a worker's pod subnet and the address routes to it use.
type PodSubnetOut struct {
	Node   string
	Subnet netip.Prefix
	NodeIP netip.Addr
}

// Meta implements role.Role.
func (PodSubnet) Meta() role.Meta {
	return role.Meta{Name: "kube-pod-subnet", Version: "1", Doc: "allocates the node's pod subnet from IPAM"}
}

// Owner is the IPAM owner of a node's pod subnet.
func Owner(node string) string { return "node/" + node }

// Run implements role.Role.
func (PodSubnet) Run(ctx context.Context, rc *role.Context, in PodSubnetIn) (PodSubnetOut, error) {
	cidr, err := netip.ParsePrefix(in.ClusterCIDR)
	if err != nil || !cidr.Addr().Is4() || cidr.Bits() > 23 {
		return PodSubnetOut{}, fmt.Errorf("kubernetes.cluster_cidr %q: want an IPv4 prefix of /23 or larger", in.ClusterCIDR)
	}
	cidr = cidr.Masked()
	ipam := in.IPAM.Value
	if err := ipam.AddRange(ctx, netsvc.Range{Name: PodRange, Prefix: cidr}); err != nil {
		return PodSubnetOut{}, fmt.Errorf("IPAM range %s: %w", PodRange, err)
	}
	n := rc.Node()
	owner := Owner(n.Name)
	out := PodSubnetOut{Node: n.Name, NodeIP: n.InterfaceAddr}
	allocs, err := ipam.Allocations(ctx, PodRange)
	if err != nil {
		return PodSubnetOut{}, err
	}
	for _, a := range allocs {
		if a.Owner == owner {
			out.Subnet = netip.PrefixFrom(a.Addr, 24)
			return out, nil
		}
	}
	// Subnet k starts at the k-th /24 of the range; the first (which holds
	// the range's own address) is skipped.
	base := cidr.Addr().As4()
	count := 1 << (24 - cidr.Bits())
	for k := 1; k < count; k++ {
		v := (uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8) + uint32(k)<<8
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0})
		got, err := ipam.Allocate(ctx, netsvc.Request{Range: PodRange, Owner: owner, Addr: a, Note: "pod subnet " + a.String() + "/24"})
		if errors.Is(err, netsvc.ErrAddrInUse) {
			continue
		}
		if err != nil {
			return PodSubnetOut{}, fmt.Errorf("allocating a pod subnet for %s: %w", n.Name, err)
		}
		out.Subnet = netip.PrefixFrom(got.Addr, 24)
		return out, nil
	}
	return PodSubnetOut{}, fmt.Errorf("no free /24 left in %s for %s's pods", cidr, n.Name)
}

// ReleasePodSubnet frees a removed node's pod subnet.
func ReleasePodSubnet(ctx context.Context, ipam netsvc.IPAM, node string) error {
	return ipam.Release(ctx, PodRange, Owner(node))
}
