package role

import (
	"fmt"
	"reflect"
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
	InputUses                      // Uses[T]: a service, or a capability of the node's transport
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
	case InputUses:
		return "service"
	}
	return fmt.Sprintf("InputKind(%d)", int(k))
}

// Wired reports whether inputs of kind k are filled from other roles'
// outputs: Same, One and All.
func (k InputKind) Wired() bool { return k == InputSame || k == InputOne || k == InputAll }

// Input describes one field of a role's input struct.
type Input struct {
	// Field is the Go field name.
	Field string
	Kind  InputKind
	// Type is the field's type for attributes, and T for Same, One, All
	// and Uses[T].
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

	index     int
	offset    uintptr       // of the field in the input struct
	fieldType reflect.Type  // the field's own type
	fill      filler        // for Same, One and All: sets the field from matches
	finder    serviceFinder // for Uses
	def       reflect.Value // parsed default
	defSrc    attr.Source   // where the default came from, for provenance
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
	case InputUses:
		return fmt.Sprintf("%s (role.Uses[%v])", in.Field, in.Type)
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

var (
	durType   = reflect.TypeFor[time.Duration]()
	wireIface = reflect.TypeFor[wire]()
)

// parseInputs reads the input struct's fields: where each is wired from.
func (d *Def) parseInputs() error {
	var errs *multierror.Error
	for i := 0; i < d.in.NumField(); i++ {
		f := d.in.Field(i)
		if !f.IsExported() {
			continue
		}
		in := Input{Field: f.Name, index: i, offset: f.Offset, fieldType: f.Type, Role: f.Tag.Get("role")}
		tag, hasTag := f.Tag.Lookup("attr")
		if tag == "-" {
			continue
		}
		if f.Type.Implements(wireIface) {
			zero := reflect.Zero(f.Type).Interface()
			in.Kind, in.Type = zero.(wire).wireKind()
			in.fill, _ = zero.(filler)
			in.finder, _ = zero.(serviceFinder)
			in.Optional = f.Tag.Get("optional") == "true"
			switch {
			case hasTag:
				errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s: a %v field is wired from role outputs and cannot also have an attr tag", d.meta.Name, f.Name, f.Type))
			case in.Kind == InputUses && (in.Role != "" || in.Optional):
				errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s: a %v field takes the one service of its type; role and optional tags do not apply", d.meta.Name, f.Name, f.Type))
			}
			d.inputs = append(d.inputs, in)
			continue
		}
		if !hasTag {
			errs = multierror.Append(errs, fmt.Errorf("role %q: input field %s (%v) says nowhere where it comes from: tag it `attr:\"name\"`, or make it role.Same, role.One, role.All or role.Uses", d.meta.Name, f.Name, f.Type))
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
	return flat(errs)
}

// parseOutputs reads the output fields published as attributes.
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
