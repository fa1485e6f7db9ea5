package kube

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/role"
)

// Resolver points a node's /etc/resolv.conf at the deployment's DNS server,
// so the load balancer's name resolves everywhere. With no
// kubernetes.dns_server set (machines whose resolver already serves the
// zone) it changes nothing.
type Resolver struct{}

// ResolverIn is the DNS server and the search domain.
type ResolverIn struct {
	Server string `attr:"kubernetes.dns_server,optional"`
	Domain string `attr:"kubernetes.domain"`
	// Endpoint orders this role after the name exists.
	Endpoint role.One[APIEndpointOut]
}

// ResolverOut is what resolv.conf says.
type ResolverOut struct{ Server string }

// Meta implements role.Role.
func (Resolver) Meta() role.Meta {
	return role.Meta{Name: "kube-resolver", Version: "1", Doc: "points the node's resolver at the deployment's DNS server"}
}

// Run implements role.Role.
func (Resolver) Run(ctx context.Context, rc *role.Context, in ResolverIn) (ResolverOut, error) {
	if in.Server == "" {
		return ResolverOut{}, nil
	}
	if _, err := netip.ParseAddr(in.Server); err != nil {
		return ResolverOut{}, fmt.Errorf("kubernetes.dns_server %q: want an IP address (resolv.conf has no ports): %w", in.Server, err)
	}
	conf := fmt.Sprintf("# written by mason (examples/kubernetes)\nnameserver %s\nsearch %s\noptions ndots:1 timeout:1 attempts:2\n", in.Server, in.Domain)
	if err := rc.WriteFile(ctx, "/etc/resolv.conf", []byte(conf), 0o644); err != nil {
		return ResolverOut{}, err
	}
	return ResolverOut{Server: in.Server}, nil
}
