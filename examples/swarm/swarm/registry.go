package swarm

import (
	"context"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/spec"
)

// FrontEnd is mason's command line for the example's spec
// (examples/swarm/swarm.hcl): `go run ./examples/swarm spec COMMAND`. With
// the state file Up uses (-state DIR/state.db; its key beside it) the spec
// and the Go program drive one deployment.
func FrontEnd() cli.App {
	return cli.App{Name: "swarm spec", Registry: Registry(), Services: FrontEndServices, KeyEnv: KEKEnv}
}

// Registry is what the example's spec may name: the roles, their
// attribute keys and the "lab" provider (settings: name, dir). The pki
// service lives in the state ([FrontEndServices]).
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
	return reg
}
