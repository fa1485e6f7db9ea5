package role

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/masonops/mason/attr"
)

// Def is a role registered with its types: what [Of] returns, and what a
// deployment binds and a spec registry offers. It keeps the role's input
// and output types, its input schema and a typed call of its Run (and
// Check); the graph stores, plans and runs Defs without knowing the types.
type Def struct {
	role    any
	meta    Meta
	in, out reflect.Type
	inputs  []Input
	publish []Published
	// run and check call the role's methods through closures Of built
	// with the role's own types: no reflection on the call path.
	run   func(ctx context.Context, rc *Context, in any) (any, error)
	check func(ctx context.Context, rc *Context, in, last any) (string, error) // nil without a Checker
	undo  func(ctx context.Context, rc *Context, last any) error               // nil without an Undoer (undo.go)
	// fieldIdx and fieldNames list the digested input fields in order:
	// every input but Uses.
	fieldIdx   []int
	fieldNames []string
	// noInputs is the digest of an input without digested fields: the
	// same for every run.
	noInputs string
	uses     bool // some input is a Uses
	// newIn allocates a zero In; inType is In's type word and inDirect
	// says In is pointer-shaped: what box needs to make an interface
	// value of the In that Bind fills.
	newIn    func() unsafe.Pointer
	inType   unsafe.Pointer
	inDirect bool
	err      error
}

// Of registers r, a role, with its types: In and Out are inferred from r's
// Run method, so only a value with the methods of [Role] compiles here,
// and the graph calls r.Run (and r.Check, when r is a [Checker]) directly.
//
//	d.Bind(members, role.Of(etcd.PeerURL{}), role.Of(etcd.Member{}))
//	reg.Roles(role.Of(hostname)) // hostname := role.Func(...)
//
// What the compiler cannot check — In and Out must be structs, every
// input field must say where it is wired from, defaults must parse, the
// role must have a name — is checked here once, and a mistake is kept in
// the Def ([Def.Err]): Bind and the spec registry report it, naming the
// role and the field.
func Of[In, Out any](r Role[In, Out]) *Def {
	d := &Def{role: r, in: reflect.TypeFor[In](), out: reflect.TypeFor[Out]()}
	if r == nil {
		d.err = fmt.Errorf("role: Of(nil): pass a role value (role.Role[%v, %v])", d.in, d.out)
		return d
	}
	d.meta = r.Meta()
	d.newIn = func() unsafe.Pointer { return unsafe.Pointer(new(In)) }
	d.run = func(ctx context.Context, rc *Context, in any) (any, error) {
		v, ok := in.(In)
		if !ok {
			return nil, d.typeError("input", in, d.in)
		}
		out, err := r.Run(ctx, rc, v)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	if c, ok := r.(Checker[In, Out]); ok {
		d.check = func(ctx context.Context, rc *Context, in, last any) (string, error) {
			v, ok := in.(In)
			if !ok {
				return "", d.typeError("input", in, d.in)
			}
			l, ok := last.(Out)
			if !ok {
				return "", fmt.Errorf("role %q: Check needs the last output of type %v, got %T", d.meta.Name, d.out, last)
			}
			return c.Check(ctx, rc, v, l)
		}
	}
	d.undo = undoOf[Out](r, d)
	d.err = d.parse()
	return d
}

// parse checks what the compiler could not and reads the schema.
func (d *Def) parse() error {
	name := d.meta.Name
	t := reflect.TypeOf(d.role)
	switch {
	case name == "":
		return fmt.Errorf("role: %v: Meta().Name is empty", t)
	case d.in.Kind() != reflect.Struct:
		return fmt.Errorf("role %q: input type %v is not a struct", name, d.in)
	case d.out.Kind() != reflect.Struct:
		return fmt.Errorf("role %q: output type %v is not a struct", name, d.out)
	}
	if d.check == nil {
		// A Check method of the wrong shape would silently never run.
		if m := reflect.ValueOf(d.role).MethodByName("Check"); m.IsValid() {
			return fmt.Errorf("role %q: Check has signature %v; want func(context.Context, *role.Context, %v, %v) (string, error)", name, m.Type(), d.in, d.out)
		}
	}
	if err := d.checkUndo(); err != nil {
		return err
	}
	if err := d.parseInputs(); err != nil {
		return err
	}
	zero := reflect.Zero(d.in).Interface()
	e := (*[2]unsafe.Pointer)(unsafe.Pointer(&zero))
	d.inType, d.inDirect = e[0], e[1] == nil // only a pointer-shaped value's data word is nil
	for _, in := range d.inputs {
		if in.Kind == InputUses {
			d.uses = true
			continue
		}
		d.fieldIdx = append(d.fieldIdx, in.index)
		d.fieldNames = append(d.fieldNames, in.Field)
	}
	if len(d.fieldIdx) == 0 {
		dg, err := attr.DigestStructFields(reflect.Zero(d.in), nil, nil, nil)
		if err != nil {
			return fmt.Errorf("role %q: digest of its empty input: %w", name, err)
		}
		d.noInputs = dg
	}
	return d.parseOutputs()
}

// Err returns what is wrong with the role's shape, or nil: an input or
// output that is not a struct, an input field that says nowhere where it
// comes from, a default that does not parse, an empty name. A Def with an
// error cannot be bound or run.
func (d *Def) Err() error {
	switch {
	case d == nil:
		return errors.New("role: nil Def: register roles with role.Of")
	case d.run == nil && d.err == nil:
		return errors.New("role: a Def not made by role.Of: register roles with role.Of")
	}
	return d.err
}

// Role returns the role value Of was given.
func (d *Def) Role() any { return d.role }

// Meta returns the role's metadata.
func (d *Def) Meta() Meta { return d.meta }

// Name returns Meta().Name.
func (d *Def) Name() string { return d.meta.Name }

// In returns the role's input type.
func (d *Def) In() reflect.Type { return d.in }

// Out returns the role's output type.
func (d *Def) Out() reflect.Type { return d.out }

// Inputs returns the input schema, in field order.
func (d *Def) Inputs() []Input { return append([]Input(nil), d.inputs...) }

// Publishes returns the output fields published as attributes.
func (d *Def) Publishes() []Published { return append([]Published(nil), d.publish...) }

// HasCheck reports whether the role implements Checker.
func (d *Def) HasCheck() bool { return d.check != nil }

// UsesServices reports whether some input is a [Uses] field.
func (d *Def) UsesServices() bool { return d.uses }

// Run calls the role's Run with in, which must be of type In (as returned
// by Bind). It returns the output as an Out value, or nil with an error.
func (d *Def) Run(ctx context.Context, rc *Context, in any) (any, error) {
	if d.run == nil || d.err != nil {
		return nil, d.Err()
	}
	return d.run(ctx, rc, in)
}

// Check calls the role's Check, if it has one; without one it reports no
// drift. last is the output of the role's last successful run.
func (d *Def) Check(ctx context.Context, rc *Context, in, last any) (string, error) {
	if d.check == nil {
		return "", nil
	}
	return d.check(ctx, rc, in, last)
}

func (d *Def) typeError(what string, got any, want reflect.Type) error {
	return fmt.Errorf("role %q: %s has type %T, want %v", d.meta.Name, what, got, want)
}

// value checks that x is a value of type t and returns it.
func (d *Def) value(what string, x any, t reflect.Type) (reflect.Value, error) {
	v := reflect.ValueOf(x)
	if !v.IsValid() || v.Type() != t {
		return reflect.Value{}, d.typeError(what, x, t)
	}
	return v, nil
}

// Publish stores the output fields tagged `attr` into vs as role outputs
// of node.
func (d *Def) Publish(vs *attr.Values, node string, out any) error {
	v, err := d.value("output", out, d.out)
	if err != nil {
		return err
	}
	for _, p := range d.publish {
		if err := vs.SetAny(p.Attr, v.Field(p.index).Interface(), attr.FromOutput(d.meta.Name, node)); err != nil {
			return fmt.Errorf("role %q: publishing output %s: %w", d.meta.Name, p.Field, err)
		}
	}
	return nil
}

// DigestInputs fingerprints a bound input: the digest of the whole input
// and one per field, so a plan can say which inputs changed. Uses fields
// are not digested: a service is not a value the role's result depends
// on.
func (d *Def) DigestInputs(in any) (string, map[string]string, error) {
	return d.DigestInputsShared(in, nil)
}

// DigestedInputs names the input fields DigestInputs digests, in the
// order DigestInputsInto writes their digests. The slice is the
// definition's own: do not modify it.
func (d *Def) DigestedInputs() []string { return d.fieldNames }

// DigestInputsInto is [Def.DigestInputsShared] writing the digest of each
// field into per, in the order of DigestedInputs (per must have that
// length), instead of into a new map: what the graph calls for every
// run.
func (d *Def) DigestInputsInto(in any, known map[string]string, per []string) (string, error) {
	if err := d.Err(); err != nil {
		return "", err
	}
	v, err := d.value("input", in, d.in)
	if err != nil {
		return "", err
	}
	if len(per) != len(d.fieldIdx) {
		return "", fmt.Errorf("role %q: DigestInputsInto: %d digests for %d inputs", d.meta.Name, len(per), len(d.fieldIdx))
	}
	if len(d.fieldIdx) == 0 {
		return d.noInputs, nil
	}
	if len(known) > 0 {
		return d.digestShared(v, known, per)
	}
	total, err := attr.DigestStructFields(v, d.fieldIdx, d.fieldNames, per)
	if err != nil {
		// Say which field: digest them one by one (errors are rare).
		for k, i := range d.fieldIdx {
			if _, ferr := attr.Digest(v.Field(i).Interface()); ferr != nil {
				return "", fmt.Errorf("role %q: input %s: %w", d.meta.Name, d.fieldNames[k], ferr)
			}
		}
		return "", fmt.Errorf("role %q: inputs: %w", d.meta.Name, err)
	}
	return total, nil
}
