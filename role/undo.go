package role

import (
	"context"
	"fmt"
	"reflect"
)

// Undoer is optionally implemented by a role that knows how to take back
// what it set up when its node leaves the deployment: an etcd member
// removes itself from the cluster (member-remove) and stops, a Swarm node
// drains and leaves, a Kubernetes node is drained and deleted. last is
// the output of its last successful run on that node.
//
// When a node leaves, the graph undoes its node-roles in reverse
// dependency order (a member before its certificate), then has the node
// deleted. Undo runs with the leaving node in its Context when the node
// still exists, and with a node that has only a name when it is already
// gone (a forced removal): an Undo that reaches the rest of the cluster
// (member-remove) should work either way. Like Run, Undo must be
// idempotent: a crash mid-removal runs it again, and a node-role that
// was already undone must not fail ("member not found" is success).
// Roles without Undo are just forgotten.
type Undoer[Out any] interface {
	Undo(ctx context.Context, rc *Context, last Out) error
}

// undoOf returns the call of r's Undo on an untyped last output, or nil
// when r is not an Undoer. Of calls it with the role's own types.
func undoOf[Out any](r any, d *Def) func(ctx context.Context, rc *Context, last any) error {
	u, ok := r.(Undoer[Out])
	if !ok {
		return nil
	}
	return func(ctx context.Context, rc *Context, last any) error {
		l, ok := last.(Out)
		if !ok {
			return fmt.Errorf("role %q: Undo needs the last output of type %v, got %T", d.meta.Name, d.out, last)
		}
		return u.Undo(ctx, rc, l)
	}
}

// checkUndo reports an Undo method of the wrong shape, which would
// otherwise silently never run.
func (d *Def) checkUndo() error {
	if d.undo != nil {
		return nil
	}
	if m := reflect.ValueOf(d.role).MethodByName("Undo"); m.IsValid() {
		return fmt.Errorf("role %q: Undo has signature %v; want func(context.Context, *role.Context, %v) error", d.meta.Name, m.Type(), d.out)
	}
	return nil
}

// HasUndo reports whether the role implements [Undoer].
func (d *Def) HasUndo() bool { return d.undo != nil }

// Undo calls the role's Undo with last, the output of its last successful
// run (of type Out); a role without one has nothing to undo.
func (d *Def) Undo(ctx context.Context, rc *Context, last any) error {
	if d.undo == nil {
		return nil
	}
	return d.undo(ctx, rc, last)
}

// UndoableFunc is a role made from two functions, one that runs and one
// that undoes; see [FuncRole.WithUndo].
type UndoableFunc[In, Out any] struct {
	FuncRole[In, Out]
	UndoFn func(ctx context.Context, rc *Context, last Out) error
}

// WithUndo gives a function role an [Undoer]: undo runs when the role's
// node leaves the deployment, with the role's last output.
//
//	member := role.Func(meta, run).WithUndo(func(ctx context.Context, rc *role.Context, last MemberOut) error {
//		return memberRemove(ctx, last.PeerURL)
//	})
func (f FuncRole[In, Out]) WithUndo(undo func(ctx context.Context, rc *Context, last Out) error) UndoableFunc[In, Out] {
	return UndoableFunc[In, Out]{FuncRole: f, UndoFn: undo}
}

// Undo implements Undoer.
func (f UndoableFunc[In, Out]) Undo(ctx context.Context, rc *Context, last Out) error {
	return f.UndoFn(ctx, rc, last)
}
