package spec

import (
	"context"
	"fmt"
	"reflect"
	"sort"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Registry is what an application offers its specs: the roles a spec may
// bind (by their Meta().Name), the providers it may name, the services it
// may configure and the attribute keys it documents. Build it once, in Go,
// before loading any spec.
type Registry struct {
	roles     map[string]*role.Def
	providers map[string]ProviderFunc
	services  map[string]ServiceFunc
	keys      map[string]attr.Decl
	err       []error
}

// ProviderFunc opens the provider a spec's provider block names, from the
// block's settings.
type ProviderFunc func(ctx context.Context, settings Settings) (*provider.Provider, error)

// ServiceFunc configures the service a spec's service block names: it
// reads the block's settings and registers implementations in svcs with
// role.Provide, where roles find them.
type ServiceFunc func(ctx context.Context, settings Settings, svcs *role.Services) error

// Settings are the evaluated attributes of a provider or service block:
// strings, float64 or int64 numbers, bools, []any and map[string]any.
type Settings map[string]any

// String returns the setting name as a string, or def when it is not set.
func (s Settings) String(name, def string) string {
	if v, ok := s[name].(string); ok {
		return v
	}
	return def
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{roles: map[string]*role.Def{}, providers: map[string]ProviderFunc{},
		services: map[string]ServiceFunc{}, keys: map[string]attr.Decl{}}
}

// Roles registers roles under their Meta().Name. Roles are registered
// with their types by [role.Of], so a value that is not a role does not
// compile; a role whose shape role.Of found wrong, or a second role under
// a name already taken, is an error, reported here and again by Load.
//
//	reg.Roles(role.Of(etcd.PeerURL{}), role.Of(etcd.Member{}))
func (r *Registry) Roles(roles ...*role.Def) error {
	var first error
	for _, def := range roles {
		err := def.Err()
		if err == nil {
			if old, dup := r.roles[def.Name()]; dup && !sameRole(old, def) {
				err = fmt.Errorf("spec: role name %q is registered twice (%T and %T); role names must be unique", def.Name(), old.Role(), def.Role())
			}
		}
		if err != nil {
			r.err = append(r.err, err)
			if first == nil {
				first = err
			}
			continue
		}
		r.roles[def.Name()] = def
	}
	return first
}

// sameRole reports whether a and b register the same role: one Def, or
// equal values of one comparable type.
func sameRole(a, b *role.Def) bool {
	if a == b {
		return true
	}
	ta, tb := reflect.TypeOf(a.Role()), reflect.TypeOf(b.Role())
	return ta == tb && ta.Comparable() && a.Role() == b.Role()
}

// Provider registers the provider a spec names in `provider "name" {}`.
func (r *Registry) Provider(name string, open ProviderFunc) { r.providers[name] = open }

// Service registers the service a spec configures in `service "name" {}`.
func (r *Registry) Service(name string, configure ServiceFunc) { r.services[name] = configure }

// Declare registers attribute keys: their types check spec values, their
// defaults and docs show in plans and in `why`.
func (r *Registry) Declare(keys ...attr.Decl) {
	for _, k := range keys {
		r.keys[k.Name()] = k
	}
}

// Role returns the registered role called name.
func (r *Registry) Role(name string) (*role.Def, bool) {
	d, ok := r.roles[name]
	return d, ok
}

// RoleNames returns the registered role names, sorted.
func (r *Registry) RoleNames() []string { return sortedKeys(r.roles) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
