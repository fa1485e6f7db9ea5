package etcd

import (
	"context"
	"fmt"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// CA makes sure the deployment's "etcd" certificate authority exists. It
// is a service-scope role: it talks to the pki service, not to a node.
type CA struct{}

// CAIn names the service the role uses: the application's pki.Issuer.
type CAIn struct {
	Issuer role.Uses[pki.Issuer]
}

// CAOut is the authority's trust bundle.
type CAOut struct {
	Service string
	CAPEM   []byte
}

// Meta implements role.Role.
func (CA) Meta() role.Meta {
	return role.Meta{Name: "etcd-ca", Version: "1", Scope: role.ScopeService,
		Doc: "creates (or loads) the etcd certificate authority"}
}

// Run implements role.Role.
func (CA) Run(ctx context.Context, rc *role.Context, in CAIn) (CAOut, error) {
	ca, err := in.Issuer.Value.CAPEM(ctx, Service)
	if err != nil {
		return CAOut{}, fmt.Errorf("etcd CA: %w", err)
	}
	return CAOut{Service: Service, CAPEM: ca}, nil
}
