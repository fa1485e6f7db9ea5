package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/masonops/mason/role"
)

// Routes sends every other worker's pod subnet to that worker. Its input is
// the aggregate of every worker's PodSubnet, so adding or removing a worker
// re-runs the routes everywhere and nothing else. Routes to subnets of the
// cluster range that no worker holds any more are removed.
type Routes struct{}

// RoutesIn is every worker's subnet.
type RoutesIn struct {
	Subnets     role.All[PodSubnetOut]
	ClusterCIDR string `attr:"kubernetes.cluster_cidr"`
}

// RoutesOut lists the routes ("10.150.2.0/24 via 10.200.0.5").
type RoutesOut struct{ Routes []string }

// Meta implements role.Role.
func (Routes) Meta() role.Meta {
	return role.Meta{Name: "kube-pod-routes", Version: "1", Doc: "routes every other worker's pod subnet to it"}
}

// Run implements role.Role.
func (Routes) Run(ctx context.Context, rc *role.Context, in RoutesIn) (RoutesOut, error) {
	n := rc.Node()
	cidr, err := netip.ParsePrefix(in.ClusterCIDR)
	if err != nil {
		return RoutesOut{}, err
	}
	want := wantRoutes(in, n.Name)
	have, err := podRoutes(ctx, rc, cidr.Masked())
	if err != nil {
		return RoutesOut{}, err
	}
	for _, r := range have {
		if !slices.Contains(want, r) {
			if _, err := rc.Exec(ctx, append([]string{"ip", "route", "del"}, strings.Fields(r)...)...); err != nil {
				return RoutesOut{}, err
			}
		}
	}
	for _, r := range want {
		if _, err := rc.Exec(ctx, append([]string{"ip", "route", "replace"}, strings.Fields(r)...)...); err != nil {
			return RoutesOut{}, fmt.Errorf("route %s on %s: %w", r, n.Name, err)
		}
	}
	return RoutesOut{Routes: want}, nil
}

// Check reports drift when the node's routes differ.
func (Routes) Check(ctx context.Context, rc *role.Context, in RoutesIn, last RoutesOut) (string, error) {
	cidr, err := netip.ParsePrefix(in.ClusterCIDR)
	if err != nil {
		return "", err
	}
	have, err := podRoutes(ctx, rc, cidr.Masked())
	if err != nil {
		return "", err
	}
	if !slices.Equal(have, last.Routes) {
		return fmt.Sprintf("pod routes are %v, want %v", have, last.Routes), nil
	}
	return "", nil
}

func wantRoutes(in RoutesIn, self string) []string {
	var want []string
	for _, p := range in.Subnets {
		if p.Node != self {
			want = append(want, p.Value.Subnet.String()+" via "+p.Value.NodeIP.String())
		}
	}
	slices.Sort(want)
	return want
}

// podRoutes lists the node's routes into the cluster range that go via a
// gateway (the bridge's own connected route is CNI's).
func podRoutes(ctx context.Context, rc *role.Context, cidr netip.Prefix) ([]string, error) {
	out, err := rc.Exec(ctx, "ip", "-4", "route", "show")
	if err != nil {
		return nil, err
	}
	var have []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "via" {
			continue
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil || !cidr.Overlaps(p) {
			continue
		}
		have = append(have, f[0]+" via "+f[2])
	}
	slices.Sort(have)
	return have, nil
}
