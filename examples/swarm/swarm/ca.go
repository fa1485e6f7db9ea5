package swarm

import (
	"context"
	"fmt"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// CA makes sure the deployment's two certificate authorities exist: "docker"
// for the engines and their clients, "netsvc" for the network services
// daemon and its clients. A service-scope role: it talks to the pki
// service, not to a node.
type CA struct{}

// CAOut is the authorities' trust bundles.
type CAOut struct {
	DockerCAPEM []byte
	NetsvcCAPEM []byte
}

// Meta implements role.Role.
func (CA) Meta() role.Meta {
	return role.Meta{Name: "swarm-ca", Version: "1", Scope: role.ScopeService,
		Doc: `creates (or loads) the "docker" and "netsvc" certificate authorities`}
}

// CAIn is the pki service.
type CAIn struct {
	Issuer role.Uses[pki.Issuer]
}

// Run implements role.Role.
func (CA) Run(ctx context.Context, rc *role.Context, in CAIn) (CAOut, error) {
	var out CAOut
	var err error
	for _, s := range []struct {
		name string
		pem  *[]byte
	}{{DockerCA, &out.DockerCAPEM}, {NetsvcCA, &out.NetsvcCAPEM}} {
		if *s.pem, err = in.Issuer.Value.CAPEM(ctx, s.name); err != nil {
			return CAOut{}, fmt.Errorf("%s authority: %w", s.name, err)
		}
	}
	return out, nil
}
