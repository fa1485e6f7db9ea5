package role

import (
	"context"
	"fmt"
	"time"
)

// Role is implemented by every role: a Go type whose Run turns a typed
// input into a typed output. Run must be idempotent: mason runs it again
// after a crash, and whenever its inputs change.
type Role[In, Out any] interface {
	Meta() Meta
	Run(ctx context.Context, rc *Context, in In) (Out, error)
}

// Checker is optionally implemented by a role that can tell whether what it
// set up is still there. last is the output of its last successful run.
// Check returns a short description of the drift ("etcd.service is not
// running"), or "" when nothing drifted; planning re-runs drifted roles.
type Checker[In, Out any] interface {
	Check(ctx context.Context, rc *Context, in In, last Out) (drift string, err error)
}

// Scope says what a role is bound to.
type Scope int

const (
	// ScopeNode roles run once on every node they are bound to.
	ScopeNode Scope = iota
	// ScopeCluster roles run once for the nodes they are bound to, on the first
	// of them (by name): "swarm init", "create the etcd cluster's CA files".
	ScopeCluster
	// ScopeService roles run once per deployment without a node: they only talk
	// to services (create a CA, register DNS names).
	ScopeService
)

// String implements fmt.Stringer.
func (s Scope) String() string {
	switch s {
	case ScopeNode:
		return "node"
	case ScopeCluster:
		return "cluster"
	case ScopeService:
		return "service"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// Meta describes a role.
type Meta struct {
	// Name identifies the role in plans, journals and specs ("etcd-member").
	Name string
	// Version is part of the role's identity: changing it re-runs the role
	// on every node, even when its inputs did not change.
	Version string
	// Doc is a sentence for people reading a plan.
	Doc string
	// Requires names roles that must have succeeded on the same node (or in
	// the deployment, for cluster and service roles) before this one starts,
	// beyond those its inputs already depend on.
	Requires []string
	// Scope says what the role is bound to; ScopeNode by default.
	Scope Scope
	// Destructive roles are never re-run automatically once they succeeded
	// (wiping a disk, initialising a cluster); only an explicit force does.
	Destructive bool
	// Once roles, like destructive ones, are never re-run automatically
	// once they succeeded: their output is fixed from then on (the founding
	// members of a cluster, a generated token). Unlike destructive roles,
	// their run changes nothing outside mason before it returns, so a run
	// interrupted by a crash is simply run again rather than held for a
	// person to inspect. A role that is both is treated as destructive.
	Once bool
	// Retry controls retries of failed runs; the zero value tries once.
	Retry Retry
}

// Retry is a role's retry policy: exponential backoff between attempts.
type Retry struct {
	// MaxAttempts counts the first run; 0 or 1 means no retries.
	MaxAttempts int
	// Initial is the first wait; 0 means 500ms.
	Initial time.Duration
	// Max caps each wait; 0 means 30s.
	Max time.Duration
	// MaxElapsed gives up after this long in all; 0 means no limit.
	MaxElapsed time.Duration
}

// FuncRole is a role made from a function; see Func.
type FuncRole[In, Out any] struct {
	M  Meta
	Fn func(ctx context.Context, rc *Context, in In) (Out, error)
}

// Func makes a role from a function: the one-line role.
//
//	hostname := role.Func(role.Meta{Name: "hostname"},
//		func(ctx context.Context, rc *role.Context, _ struct{}) (HostOut, error) { ... })
func Func[In, Out any](meta Meta, fn func(ctx context.Context, rc *Context, in In) (Out, error)) FuncRole[In, Out] {
	return FuncRole[In, Out]{M: meta, Fn: fn}
}

// Meta implements Role.
func (f FuncRole[In, Out]) Meta() Meta { return f.M }

// Run implements Role.
func (f FuncRole[In, Out]) Run(ctx context.Context, rc *Context, in In) (Out, error) {
	return f.Fn(ctx, rc, in)
}
