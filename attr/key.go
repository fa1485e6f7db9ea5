package attr

import (
	"fmt"
	"reflect"
	"regexp"
)

// nameRE: lowercase dotted segments, at least two ("etcd.cluster_token").
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`)

// ValidName reports whether name is a well-formed attribute name: two or
// more dot-separated segments of lowercase letters, digits, '_' and '-',
// each starting with a letter.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Key declares a typed attribute. Keys are small immutable values: the With
// methods return a modified copy, so declaring keys as package variables is
// the normal way to use them.
type Key[T any] struct {
	name     string
	doc      string
	def      T
	hasDef   bool
	validate func(T) error
	secret   bool
}

// New declares an attribute named name holding values of type T. A
// malformed name is reported by [Key.Err] and by every Set or Get that uses
// the key.
func New[T any](name string) Key[T] { return Key[T]{name: name} }

// WithDoc returns a copy of k documented by doc.
func (k Key[T]) WithDoc(doc string) Key[T] { k.doc = doc; return k }

// WithDefault returns a copy of k whose value is def when no layer sets it.
func (k Key[T]) WithDefault(def T) Key[T] { k.def, k.hasDef = def, true; return k }

// WithValidation returns a copy of k that checks every value with fn before
// accepting it. fn's error should say what is wrong and what is allowed.
func (k Key[T]) WithValidation(fn func(T) error) Key[T] { k.validate = fn; return k }

// AsSecret returns a copy of k whose values never print.
func (k Key[T]) AsSecret() Key[T] { k.secret = true; return k }

// Name returns the key's dotted name.
func (k Key[T]) Name() string { return k.name }

// Doc returns the key's documentation.
func (k Key[T]) Doc() string { return k.doc }

// Default returns the key's default and whether it has one.
func (k Key[T]) Default() (T, bool) { return k.def, k.hasDef }

// Secret reports whether the key's values are secret.
func (k Key[T]) Secret() bool { return k.secret }

// Type returns T.
func (k Key[T]) Type() reflect.Type { return reflect.TypeFor[T]() }

// Err reports a malformed key name.
func (k Key[T]) Err() error {
	if !ValidName(k.name) {
		return fmt.Errorf("attr: invalid key name %q: want dotted lowercase segments like \"etcd.cluster_token\"", k.name)
	}
	return nil
}

// String returns the key's name and type, e.g. "etcd.cluster_token (string)".
func (k Key[T]) String() string { return fmt.Sprintf("%s (%v)", k.name, k.Type()) }

// check validates v against the key.
func (k Key[T]) check(v T) error {
	if k.validate == nil {
		return nil
	}
	if err := k.validate(v); err != nil {
		return fmt.Errorf("attr %q: invalid value: %w", k.name, err)
	}
	return nil
}

// Decl is a key with its type erased: what a schema, a spec loader or a
// documentation generator needs to know about an attribute.
type Decl interface {
	Name() string
	Doc() string
	Type() reflect.Type
	Secret() bool
	// DefaultValue returns the default, if any, as an untyped value.
	DefaultValue() (any, bool)
	// CheckValue type-checks and validates an untyped value.
	CheckValue(v any) error
}

// DefaultValue implements Decl.
func (k Key[T]) DefaultValue() (any, bool) {
	if !k.hasDef {
		return nil, false
	}
	return k.def, true
}

// CheckValue implements Decl.
func (k Key[T]) CheckValue(v any) error {
	t, ok := v.(T)
	if !ok {
		if s, isSecret := v.(Secret[T]); isSecret {
			t = s.Reveal()
		} else {
			return &TypeError{Name: k.name, Have: reflect.TypeOf(v), Want: k.Type()}
		}
	}
	return k.check(t)
}

var _ Decl = Key[int]{}
