package role

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/attr"
)

// InputKind says where an input field is wired from.
type InputKind int

// Input kinds.
const (
	InputAttr InputKind = iota + 1 // a tagged attribute
	InputSame                      // Same[T]: an output on the same node
	InputOne                       // One[T]: the one output in the deployment
	InputAll                       // All[T]: every output in the deployment
)

// String implements fmt.Stringer.
func (k InputKind) String() string {
	switch k {
	case InputAttr:
		return "attr"
	case InputSame:
		return "same-node output"
	case InputOne:
		return "single output"
	case InputAll:
		return "outputs of all nodes"
	}
	return fmt.Sprintf("InputKind(%d)", int(k))
}

// Input describes one field of a role's input struct.
type Input struct {
	// Field is the Go field name.
	Field string
	Kind  InputKind
	// Type is the field's type for attributes, and T for Same/One/All[T].
	Type reflect.Type
	// Attr is the attribute name, for InputAttr.
	Attr string
	// Default is the `default` tag's text and HasDefault whether it was set.
	Default    string
	HasDefault bool
	// Optional inputs take their zero value when nothing provides them
	// (`attr:"name,optional"`, or `optional:"true"` on a wiring field).
	Optional bool
	// Role, if set (`role:"name"`), restricts the producers of a wiring
	// field to the role of that name.
	Role string

	index  int
	fill   filler        // for wiring fields: sets the field from matches
	def    reflect.Value // parsed default
	defSrc attr.Source   // where the default came from, for provenance
}

// Describe returns how the field is wired, for errors and plans:
// `Token (string, attr "etcd.cluster_token")`, `Peers (role.All[etcd.PeerURLOut])`.
func (in Input) Describe() string {
	switch in.Kind {
	case InputAttr:
		return fmt.Sprintf("%s (%v, attr %q)", in.Field, in.Type, in.Attr)
	case InputSame:
		return fmt.Sprintf("%s (role.Same[%v]%s)", in.Field, in.Type, in.roleNote())
	case InputOne:
		return fmt.Sprintf("%s (role.One[%v]%s)", in.Field, in.Type, in.roleNote())
	case InputAll:
		return fmt.Sprintf("%s (role.All[%v]%s)", in.Field, in.Type, in.roleNote())
	}
	return in.Field
}

func (in Input) roleNote() string {
	if in.Role == "" {
		return ""
	}
	return fmt.Sprintf(` from role %q`, in.Role)
}

// Published describes an output field published as an attribute.
type Published struct {
	Field string
	Attr  string
	Type  reflect.Type
	index int
}

// Def is a role with its types erased: what the graph stores, plans and
// runs. Build one with Describe.
type Def struct {
	role    any
	meta    Meta
	in, out reflect.Type
	inputs  []Input
	publish []Published
	run     reflect.Value
	// runAny calls Run without reflection when the role can (a FuncRole);
	// nil otherwise.
	runAny func(ctx context.Context, rc *Context, in any) (any, error)
	check  reflect.Value // invalid when the role has no Check
	// fieldIdx and fieldNames list the input fields in order, for digests.
	fieldIdx   []int
	fieldNames []string
	// noInputs is the digest of an input without fields: the same for
	// every run.
	noInputs string
}

// erasedRunner is implemented by roles whose Run can be called with the
// input and output types erased without reflection: FuncRole, whose type
// parameters name In and Out. Def.Run uses it; it behaves exactly like the
// reflective call, only cheaper.
type erasedRunner interface {
	runErased(ctx context.Context, rc *Context, in any) (any, error)
}

// runErased implements erasedRunner.
func (f FuncRole[In, Out]) runErased(ctx context.Context, rc *Context, in any) (any, error) {
	out, err := f.Fn(ctx, rc, in.(In))
	if err != nil {
		return nil, err
	}
	return out, nil
}

var (
	ctxType   = reflect.TypeFor[context.Context]()
	rcType    = reflect.TypeFor[*Context]()
	errType   = reflect.TypeFor[error]()
	strType   = reflect.TypeFor[string]()
	durType   = reflect.TypeFor[time.Duration]()
	metaType  = reflect.TypeFor[Meta]()
	wireIface = reflect.TypeFor[wire]()
)

// Describe checks that r is a role — a Meta() Meta method and a method
// Run(context.Context, *role.Context, In) (Out, error) with struct In and
// Out — and returns its Def. The error says exactly what is wrong.
func Describe(r any) (*Def, error) {
	if r == nil {
		return nil, errors.New("role: Describe(nil)")
	}
	if d, ok := r.(*Def); ok {
		return d, nil
	}
	v := reflect.ValueOf(r)
	t := v.Type()
	mm, ok := t.MethodByName("Meta")
	if !ok || mm.Type.NumIn() != 1 || mm.Type.NumOut() != 1 || mm.Type.Out(0) != metaType {
		return nil, fmt.Errorf("role: %v has no method Meta() role.Meta", t)
	}
	meta := v.MethodByName("Meta").Call(nil)[0].Interface().(Meta)
	name := meta.Name
	if name == "" {
		return nil, fmt.Errorf("role: %v: Meta().Name is empty", t)
	}
	run := v.MethodByName("Run")
	if !run.IsValid() {
		return nil, fmt.Errorf("role %q (%v): no Run method; want Run(context.Context, *role.Context, In) (Out, error)", name, t)
	}
	rt := run.Type()
	if rt.NumIn() != 3 || rt.In(0) != ctxType || rt.In(1) != rcType || rt.NumOut() != 2 || rt.Out(1) != errType {
		return nil, fmt.Errorf("role %q (%v): Run has signature %v; want func(context.Context, *role.Context, In) (Out, error)", name, t, rt)
	}
	d := &Def{role: r, meta: meta, in: rt.In(2), out: rt.Out(0), run: run}
	if d.in.Kind() != reflect.Struct {
		return nil, fmt.Errorf("role %q: input type %v is not a struct", name, d.in)
	}
	if d.out.Kind() != reflect.Struct {
		return nil, fmt.Errorf("role %q: output type %v is not a struct", name, d.out)
	}
	if err := d.parseInputs(); err != nil {
		return nil, err
	}
	for _, in := range d.inputs {
		d.fieldIdx = append(d.fieldIdx, in.index)
		d.fieldNames = append(d.fieldNames, in.Field)
	}
	if len(d.fieldIdx) == 0 {
		dg, err := attr.DigestStructFields(reflect.Zero(d.in), nil, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("role %q: digest of its empty input: %w", name, err)
		}
		d.noInputs = dg
	}
	if er, ok := r.(erasedRunner); ok {
		d.runAny = er.runErased
	}
	if err := d.parseOutputs(); err != nil {
		return nil, err
	}
	if c := v.MethodByName("Check"); c.IsValid() {
		ct := c.Type()
		want := reflect.FuncOf([]reflect.Type{ctxType, rcType, d.in, d.out}, []reflect.Type{strType, errType}, false)
		if ct != want {
			return nil, fmt.Errorf("role %q: Check has signature %v; want %v", name, ct, want)
		}
		d.check = c
	}
	return d, nil
}

// MustDescribe is Describe for roles declared in Go that are known to be
// well-formed; it panics on error. Use Describe for roles chosen at run time.
func MustDescribe(r any) *Def {
	d, err := Describe(r)
	if err != nil {
		panic(err)
	}
	return d
}

func (d *Def) parseInputs() error {
	var errs *multierror.Error
	for i := 0; i < d.in.NumField(); i++ {
		f := d.in.Field(i)
		if !f.IsExported() {
			continue
		}
		in := Input{Field: f.Name, index: i, Role: f.Tag.Get("role")}
		tag, hasTag := f.Tag.Lookup("attr")
		if tag == "-" {
			continue
		}
		if f.Type.Implements(wireIface) {
			in.Kind, in.Type = reflect.Zero(f.Type).Interface().(wire).wireKind()
			in.fill, _ = reflect.Zero(f.Type).Interface().(filler)
			in.Optional = f.Tag.Get("optional") == "true"
			if hasTag {
				errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s: a %v field is wired from role outputs and cannot also have an attr tag", d.meta.Name, f.Name, f.Type))
			}
			d.inputs = append(d.inputs, in)
			continue
		}
		if !hasTag {
			errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s (%v) says nowhere where it comes from: tag it `attr:\"name\"`, or make it role.Same, role.One or role.All", d.meta.Name, f.Name, f.Type))
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if !attr.ValidName(name) {
			errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s: invalid attribute name %q: want dotted lowercase segments like \"etcd.cluster_token\"", d.meta.Name, f.Name, name))
			continue
		}
		in.Kind, in.Type, in.Attr, in.Optional = InputAttr, f.Type, name, opts == "optional"
		if def, ok := f.Tag.Lookup("default"); ok {
			v, err := parseDefault(def, f.Type)
			if err != nil {
				errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s: default %q: %w", d.meta.Name, f.Name, def, err))
				continue
			}
			in.Default, in.HasDefault, in.def = def, true, v
			in.defSrc = attr.Source{Layer: attr.LayerDefault, Detail: "default tag of " + d.meta.Name + "." + f.Name}
		}
		d.inputs = append(d.inputs, in)
	}
	return errs.ErrorOrNil()
}

func (d *Def) parseOutputs() error {
	for i := 0; i < d.out.NumField(); i++ {
		f := d.out.Field(i)
		tag, ok := f.Tag.Lookup("attr")
		if !ok || !f.IsExported() || tag == "-" {
			continue
		}
		if !attr.ValidName(tag) {
			return fmt.Errorf("role %q: output field %s: invalid attribute name %q", d.meta.Name, f.Name, tag)
		}
		d.publish = append(d.publish, Published{Field: f.Name, Attr: tag, Type: f.Type, index: i})
	}
	return nil
}

// parseDefault turns a `default` tag into a value of type t.
func parseDefault(s string, t reflect.Type) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	if t == durType {
		dur, err := time.ParseDuration(s)
		if err != nil {
			return v, err
		}
		v.SetInt(int64(dur))
		return v, nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return v, err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, t.Bits())
		if err != nil {
			return v, err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, t.Bits())
		if err != nil {
			return v, err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return v, err
		}
		v.SetFloat(n)
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return v, fmt.Errorf("defaults for %v are not supported (only []string, comma-separated)", t)
		}
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		v.Set(reflect.ValueOf(parts).Convert(t))
	default:
		return v, fmt.Errorf("defaults for %v are not supported", t)
	}
	return v, nil
}

// Role returns the role value Describe was given.
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
func (d *Def) HasCheck() bool { return d.check.IsValid() }

// Output is a produced output the binder can wire into inputs.
type Output struct {
	Role  string
	Node  string // "" for service-scope roles
	Value any    // the producer's Out struct
}

// Env is what Bind looks in.
type Env struct {
	// Node is the node the role is bound to ("" for service scope).
	Node string
	// Attrs holds the attribute layers visible on that node.
	Attrs *attr.Values
	// Outputs are the outputs of other node-roles. The graph passes the
	// outputs of the node-role's upstream dependencies; tests pass what
	// they like.
	Outputs []Output
}

// Binding records where one input field's value came from.
type Binding struct {
	Field   string
	Sources []attr.Source
}

// String prints "Field <- source, source".
func (b Binding) String() string {
	srcs := make([]string, len(b.Sources))
	for i, s := range b.Sources {
		srcs[i] = s.String()
	}
	if len(srcs) == 0 {
		srcs = []string{"zero value (optional)"}
	}
	return b.Field + " <- " + strings.Join(srcs, ", ")
}

// BindError reports an input that could not be filled.
type BindError struct {
	Role  string
	Node  string
	Field string // Input.Describe()
	// Looked lists every place that was searched, in order.
	Looked []string
	Err    error
}

// Error implements the error interface.
func (e *BindError) Error() string {
	where := ""
	if e.Node != "" {
		where = " on " + e.Node
	}
	return fmt.Sprintf("role %q%s: input %s: %v; looked at: %s", e.Role, where, e.Field, e.Err, strings.Join(e.Looked, ", "))
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *BindError) Unwrap() error { return e.Err }

// Match returns the outputs in outs that the wiring input in accepts, in
// node order, and which role produced each. It is exported for the graph,
// which uses it to find a node-role's upstream dependencies.
func (in Input) Match(node string, outs []Output) []Output {
	return in.matchInto(nil, node, outs)
}

// matchInto is Match appending to m.
func (in Input) matchInto(m []Output, node string, outs []Output) []Output {
	for _, o := range outs {
		if o.Value == nil || reflect.TypeOf(o.Value) != in.Type {
			continue
		}
		if in.Role != "" && o.Role != in.Role {
			continue
		}
		if in.Kind == InputSame && o.Node != node {
			continue
		}
		m = append(m, o)
	}
	if len(m) > 1 {
		slices.SortStableFunc(m, func(a, b Output) int {
			if c := strings.Compare(a.Node, b.Node); c != 0 {
				return c
			}
			return strings.Compare(a.Role, b.Role)
		})
	}
	return m
}

// Bind fills the role's input struct from env. It returns the input (a
// value of type In), where each field came from, and — if any input cannot
// be filled — every failure at once, each a *BindError.
func (d *Def) Bind(env Env) (any, []Binding, error) {
	bindings := make([]Binding, 0, len(d.inputs))
	in, err := d.bind(env, &bindings)
	if err != nil {
		return nil, bindings, err
	}
	return in, bindings, nil
}

// BindInput is Bind without the record of where each field came from: what
// an executor that binds every node-role before running it needs.
func (d *Def) BindInput(env Env) (any, error) {
	return d.bind(env, nil)
}

// bind fills the input; it appends to *bindings unless bindings is nil.
func (d *Def) bind(env Env, bindings *[]Binding) (any, error) {
	inV := reflect.New(d.in).Elem()
	var errs *multierror.Error
	var match []Output // reused from field to field: fill keeps none of it
	for _, in := range d.inputs {
		field := inV.Field(in.index)
		if in.Kind == InputAttr {
			src, err := d.bindAttr(in, env, field)
			if err != nil {
				errs = d.bindFailed(errs, in, env, err)
				continue
			}
			if bindings != nil {
				b := Binding{Field: in.Field}
				if src != nil {
					b.Sources = []attr.Source{*src}
				}
				*bindings = append(*bindings, b)
			}
			continue
		}
		m := in.matchInto(match[:0], env.Node, env.Outputs)
		match = m
		switch {
		case len(m) == 0 && in.Optional:
			if bindings != nil {
				*bindings = append(*bindings, Binding{Field: in.Field})
			}
			continue
		case len(m) == 0:
			errs = d.bindFailed(errs, in, env, errors.New("no role produced it"))
			continue
		case len(m) > 1 && in.Kind != InputAll:
			errs = d.bindFailed(errs, in, env, fmt.Errorf("ambiguous: produced by %s; tag the field `role:\"name\"` to choose", describeOutputs(m)))
			continue
		}
		if err := in.fill.fill(field, m); err != nil {
			errs = d.bindFailed(errs, in, env, err)
			continue
		}
		if bindings != nil {
			b := Binding{Field: in.Field, Sources: make([]attr.Source, len(m))}
			for k, o := range m {
				b.Sources[k] = attr.FromOutput(o.Role, o.Node)
			}
			*bindings = append(*bindings, b)
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	return inV.Interface(), nil
}

func (d *Def) bindFailed(errs *multierror.Error, in Input, env Env, err error) *multierror.Error {
	return multierror.Append(errs, &BindError{Role: d.meta.Name, Node: env.Node, Field: in.Describe(), Looked: d.looked(in, env), Err: err})
}

// looked lists, for an error message, every place Bind searched for in.
// It is built only when binding fails.
func (d *Def) looked(in Input, env Env) []string {
	if in.Kind != InputAttr {
		who := fmt.Sprintf("outputs of type %v", in.Type)
		if in.Role != "" {
			who += fmt.Sprintf(" from role %q", in.Role)
		}
		if in.Kind == InputSame {
			return []string{who + " on node " + env.Node}
		}
		return []string{who + " on every node of the deployment"}
	}
	looked := []string{"override", "role outputs"}
	if env.Node != "" {
		looked = append(looked, "node "+env.Node)
	}
	return append(looked, "deployment", "key default", "`default` tag")
}

func describeOutputs(outs []Output) string {
	parts := make([]string, len(outs))
	for i, o := range outs {
		parts[i] = o.Role
		if o.Node != "" {
			parts[i] += "@" + o.Node
		}
	}
	return strings.Join(parts, ", ")
}

func (d *Def) bindAttr(in Input, env Env, field reflect.Value) (*attr.Source, error) {
	if env.Attrs != nil {
		if v, ok := env.Attrs.Lookup(in.Attr); ok {
			got := reflect.ValueOf(v.Any())
			switch {
			case got.IsValid() && got.Type().AssignableTo(field.Type()):
				field.Set(got)
			case got.IsValid() && attr.IsSecret(field.Interface()):
				// A plain value delivered to a Secret field: wrap it.
				wrapped, ok := attr.ConcealAs(field.Type(), v.Any())
				if !ok {
					return nil, &attr.TypeError{Name: in.Attr, Have: got.Type(), Want: field.Type(), Source: v.Source}
				}
				field.Set(reflect.ValueOf(wrapped))
			case got.IsValid() && attr.IsSecret(v.Any()):
				// A secret value delivered to a plain field: unwrap it.
				inner := got.MethodByName("Reveal").Call(nil)[0]
				if !inner.Type().AssignableTo(field.Type()) {
					return nil, &attr.TypeError{Name: in.Attr, Have: inner.Type(), Want: field.Type(), Source: v.Source}
				}
				field.Set(inner)
			default:
				return nil, &attr.TypeError{Name: in.Attr, Have: reflect.TypeOf(v.Any()), Want: field.Type(), Source: v.Source}
			}
			return &v.Source, nil
		}
	}
	if in.HasDefault {
		field.Set(in.def)
		return &in.defSrc, nil
	}
	if in.Optional {
		return nil, nil
	}
	return nil, fmt.Errorf("attribute %q has no value", in.Attr)
}

// Run calls the role's Run with in, which must be of type In (as returned
// by Bind). It returns the output as an Out value.
func (d *Def) Run(ctx context.Context, rc *Context, in any) (any, error) {
	inV, err := d.inValue(in)
	if err != nil {
		return nil, err
	}
	if d.runAny != nil {
		return d.runAny(ctx, rc, in)
	}
	res := d.run.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(rc), inV})
	if e := res[1].Interface(); e != nil {
		return nil, e.(error)
	}
	return res[0].Interface(), nil
}

// Check calls the role's Check, if it has one; without one it reports no
// drift.
func (d *Def) Check(ctx context.Context, rc *Context, in, last any) (string, error) {
	if !d.check.IsValid() {
		return "", nil
	}
	inV, err := d.inValue(in)
	if err != nil {
		return "", err
	}
	lastV := reflect.ValueOf(last)
	if !lastV.IsValid() || lastV.Type() != d.out {
		return "", fmt.Errorf("role %q: Check needs the last output of type %v, got %T", d.meta.Name, d.out, last)
	}
	res := d.check.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(rc), inV, lastV})
	if e := res[1].Interface(); e != nil {
		return "", e.(error)
	}
	return res[0].String(), nil
}

func (d *Def) inValue(in any) (reflect.Value, error) {
	v := reflect.ValueOf(in)
	if !v.IsValid() || v.Type() != d.in {
		return reflect.Value{}, fmt.Errorf("role %q: input has type %T, want %v", d.meta.Name, in, d.in)
	}
	return v, nil
}

// Publish stores the output fields tagged `attr` into vs as role outputs
// of node.
func (d *Def) Publish(vs *attr.Values, node string, out any) error {
	v := reflect.ValueOf(out)
	if !v.IsValid() || v.Type() != d.out {
		return fmt.Errorf("role %q: output has type %T, want %v", d.meta.Name, out, d.out)
	}
	for _, p := range d.publish {
		if err := vs.SetAny(p.Attr, v.Field(p.index).Interface(), attr.FromOutput(d.meta.Name, node)); err != nil {
			return fmt.Errorf("role %q: publishing output %s: %w", d.meta.Name, p.Field, err)
		}
	}
	return nil
}

// DigestInputs fingerprints a bound input: the digest of the whole input
// and one per field, so a plan can say which inputs changed.
func (d *Def) DigestInputs(in any) (string, map[string]string, error) {
	v, err := d.inValue(in)
	if err != nil {
		return "", nil, err
	}
	if len(d.fieldIdx) == 0 {
		return d.noInputs, map[string]string{}, nil
	}
	var small [4]string
	per := small[:0]
	if len(d.fieldIdx) > len(small) {
		per = make([]string, 0, len(d.fieldIdx))
	}
	per = per[:len(d.fieldIdx)]
	total, err := attr.DigestStructFields(v, d.fieldIdx, d.fieldNames, per)
	if err != nil {
		// Say which field: digest them one by one (errors are rare).
		for _, i := range d.inputs {
			if _, ferr := attr.Digest(v.Field(i.index).Interface()); ferr != nil {
				return "", nil, fmt.Errorf("role %q: input %s: %w", d.meta.Name, i.Field, ferr)
			}
		}
		return "", nil, fmt.Errorf("role %q: inputs: %w", d.meta.Name, err)
	}
	fields := make(map[string]string, len(per))
	for k, name := range d.fieldNames {
		fields[name] = per[k]
	}
	return total, fields, nil
}
