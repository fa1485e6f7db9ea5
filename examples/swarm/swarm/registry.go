package swarm

import (
	"context"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

// Registry is what the example's spec (examples/swarm/swarm.hcl) may
// name: the roles, their attribute keys, the "lab" provider (settings:
// name, dir) and the "pki" service (setting: dir, where the pki store and
// the key-encryption key live — the same files Up uses, so the spec and
// the Go program drive one deployment).
func Registry() *spec.Registry {
	reg := spec.NewRegistry()
	if err := reg.Roles(Roles()...); err != nil {
		panic(err) // the package's roles are well-formed; this cannot fail
	}
	reg.Declare(Keys()...)
	reg.Provider("lab", func(ctx context.Context, s spec.Settings) (*provider.Provider, error) {
		l, err := lab.Open(ctx, lab.Options{Name: s.String("name", DefaultConfig().Lab), Dir: s.String("dir", "")})
		if err != nil {
			return nil, err
		}
		return l.Provider(), nil
	})
	reg.Service("pki", func(ctx context.Context, s spec.Settings, svcs *role.Services) error {
		// The store stays open until the program exits.
		_, err := provideServices(svcs, s.String("dir", DefaultConfig().StateDir))
		return err
	})
	return reg
}
