package role

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
)

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
	// Services are the application's services, and Transport the node's
	// transport: a [Uses] input takes the registered service of its type,
	// else the transport when it implements the type.
	Services  *Services
	Transport provider.Transport
	// NodePending says the node does not exist yet (the provider has not
	// created it, so it has no Transport): a Uses input no service fills
	// is then left empty instead of failing, since the node's transport
	// may offer it. The graph sets it when planning, never when running.
	NodePending bool
	// Shared holds values of All inputs built once for all their
	// consumers ([Input.Gather]), by field name: such a field takes its
	// value from here, as it is, instead of from Outputs.
	Shared map[string]any
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
	if err := d.Err(); err != nil {
		return nil, err
	}
	// The input is filled in place, each field at its offset, through
	// typed pointers where the field is a wiring type.
	p := d.newIn()
	var inV reflect.Value // for attribute inputs: made on first use
	var errs *multierror.Error
	// Wiring inputs are resolved against env.Outputs as producers, on the
	// stack while they are few; idx is reused from field to field, and sel
	// is the one output that fills a Same or One field, or a copy of the
	// several of an All (fill keeps none of them).
	var pbuf [8]Producer
	var ibuf [8]int
	prods, idx := pbuf[:0], ibuf[:0]
	var sel []Output
	haveProds := false
	for k := range d.inputs {
		in := &d.inputs[k]
		f := unsafe.Add(p, in.offset)
		switch in.Kind {
		case InputAttr:
			if !inV.IsValid() {
				inV = reflect.NewAt(d.in, p).Elem()
			}
			src, err := d.bindAttr(in, env, inV.Field(in.index))
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
		case InputUses:
			src, err := d.bindUses(in, env, f)
			if err != nil {
				errs = multierror.Append(errs, err)
				continue
			}
			if bindings != nil {
				*bindings = append(*bindings, Binding{Field: in.Field, Sources: src})
			}
			continue
		}
		if v, ok := env.Shared[in.Field]; ok && in.Kind == InputAll {
			src, err := in.bindShared(f, v, bindings != nil)
			if err != nil {
				errs = d.bindFailed(errs, in, env, err)
			} else if bindings != nil {
				*bindings = append(*bindings, Binding{Field: in.Field, Sources: src})
			}
			continue
		}
		if !haveProds {
			for _, o := range env.Outputs {
				prods = append(prods, Producer{Role: o.Role, Node: o.Node, Out: reflect.TypeOf(o.Value)})
			}
			haveProds = true
		}
		m, err := in.resolve(d.meta.Name, env.Node, prods, idx[:0])
		idx = m
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		if len(m) == 0 { // optional, and nothing produced it
			if bindings != nil {
				*bindings = append(*bindings, Binding{Field: in.Field})
			}
			continue
		}
		if len(m) == 1 {
			sel = env.Outputs[m[0] : m[0]+1] // no copy: fill keeps none
		} else {
			sel = sel[:0:0] // not into env.Outputs
			for _, k := range m {
				sel = append(sel, env.Outputs[k])
			}
		}
		in.fill.fill(f, sel)
		if bindings != nil {
			b := Binding{Field: in.Field, Sources: make([]attr.Source, len(sel))}
			for k, o := range sel {
				b.Sources[k] = attr.FromOutput(o.Role, o.Node)
			}
			*bindings = append(*bindings, b)
		}
	}
	if err := flat(errs); err != nil {
		return nil, err
	}
	return d.box(p), nil
}

// box returns the input at p, which nothing else refers to, as an
// interface value holding it: the interface points to it rather than to
// a copy, as converting *p would make.
func (d *Def) box(p unsafe.Pointer) any {
	var x any
	e := (*[2]unsafe.Pointer)(unsafe.Pointer(&x)) // an interface: type word, data word
	e[0], e[1] = d.inType, p
	if d.inDirect {
		e[1] = *(*unsafe.Pointer)(p) // a pointer-shaped value is the data word itself
	}
	return x
}

func (d *Def) bindFailed(errs *multierror.Error, in *Input, env Env, err error) *multierror.Error {
	return multierror.Append(errs, &BindError{Role: d.meta.Name, Node: env.Node, Field: in.Describe(), Looked: d.looked(in, env), Err: err})
}

// looked lists, for an error message, every place Bind searched for the
// attribute input in. It is built only when binding fails.
func (d *Def) looked(in *Input, env Env) []string {
	looked := []string{"override", "role outputs"}
	if env.Node != "" {
		looked = append(looked, "node "+env.Node)
	}
	return append(looked, "deployment", "key default", "`default` tag")
}

func (d *Def) bindAttr(in *Input, env Env, field reflect.Value) (*attr.Source, error) {
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

// bindUses fills a Uses input, whose field is at f: the registered
// service of its type, else the node's transport if it implements the
// type. It returns where the service came from (none when
// env.NodePending left it empty), or a *BindError.
func (d *Def) bindUses(in *Input, env Env, f unsafe.Pointer) ([]attr.Source, error) {
	svc, fromTransport, ok := in.finder.find(env.Services, env.Transport)
	if ok {
		in.finder.set(f, svc)
		if fromTransport {
			return []attr.Source{{Service: in.Type.String(), Node: env.Node, Detail: "capability of node " + env.Node + "'s transport"}}, nil
		}
		return []attr.Source{{Service: in.Type.String(), Detail: "registered with role.Provide"}}, nil
	}
	if env.NodePending && env.Node != "" {
		return []attr.Source{{Service: in.Type.String(), Node: env.Node, Detail: "known when node " + env.Node + " exists"}}, nil
	}
	looked := []string{fmt.Sprintf("services registered with role.Provide[%v]", in.Type)}
	var err error
	switch {
	case env.Node == "":
		err = fmt.Errorf("no service of type %v is registered; the application must call role.Provide[%v] on the services it gives the deployment (graph.Deployment.UseServices)", in.Type, in.Type)
	case env.Transport == nil:
		looked = append(looked, "node "+env.Node+"'s transport (it has none)")
		err = fmt.Errorf("no service of type %v is registered, and node %s has no transport that could offer it; register one with role.Provide[%v], or use a provider whose nodes offer it", in.Type, env.Node, in.Type)
	default:
		looked = append(looked, fmt.Sprintf("node %s's transport (%T)", env.Node, env.Transport))
		err = fmt.Errorf("no service of type %v is registered, and node %s's transport (%T) does not implement it; register one with role.Provide[%v], or use a provider whose nodes offer it", in.Type, env.Node, env.Transport, in.Type)
	}
	return nil, &BindError{Role: d.meta.Name, Node: env.Node, Field: in.Describe(), Looked: looked, Err: err}
}

// CheckUses checks that every [Uses] input can be filled from env, as
// Bind would fill it, without binding anything else: the graph calls it
// when it plans, so a missing service fails the plan before anything runs.
// It returns every failure at once, each a *BindError.
func (d *Def) CheckUses(env Env) error {
	if err := d.Err(); err != nil {
		return err
	}
	if !d.uses {
		return nil
	}
	var errs *multierror.Error
	for k := range d.inputs {
		in := &d.inputs[k]
		if in.Kind != InputUses {
			continue
		}
		if _, _, ok := in.finder.find(env.Services, env.Transport); ok || (env.NodePending && env.Node != "") {
			continue
		}
		_, err := d.bindUses(in, env, nil) // sets nothing: no service was found
		errs = multierror.Append(errs, err)
	}
	return flat(errs)
}

// flat is errs as one error, or nil: its causes one a line, without
// go-multierror's count, bullets and blank lines, so that it reads the
// same alone and inside another message. errors.As still reaches each.
func flat(errs *multierror.Error) error {
	if errs == nil {
		return nil
	}
	errs.ErrorFormat = func(es []error) string {
		lines := make([]string, len(es))
		for i, e := range es {
			lines[i] = e.Error()
		}
		return strings.Join(lines, "\n")
	}
	return errs.ErrorOrNil()
}
