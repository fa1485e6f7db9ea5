package attr

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
)

// Redacted is what a secret prints as.
const Redacted = "[redacted]"

// Secret wraps a value that must never be printed. String, every fmt verb,
// JSON marshalling and slog all show [Redacted]; only Reveal gives the value.
//
// Use Secret[T] as the type of a role input or output field that carries a
// token, a password or a private key. Its gob encoding carries the value, so
// that the graph's journal can give it back to the roles that consume it;
// the journal seals every output that holds a Secret under the
// application's key-encryption key (package seal) before it is stored,
// and keys the digests of secret inputs, so neither the value nor a
// digest anyone could test guesses against rests in plain text. Its JSON
// encoding does not carry the value.
type Secret[T any] struct {
	v T
}

// Conceal wraps v as a secret.
func Conceal[T any](v T) Secret[T] { return Secret[T]{v: v} }

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret[T]) Reveal() T { return s.v }

// String implements fmt.Stringer.
func (s Secret[T]) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (s Secret[T]) GoString() string { return "attr.Secret{" + Redacted + "}" }

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v, %s, %q, %x,
// %d) reaches the value.
func (s Secret[T]) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, Redacted)
}

// MarshalJSON implements json.Marshaler: secrets are written redacted.
func (s Secret[T]) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

// UnmarshalJSON implements json.Unmarshaler: a secret can be read from JSON
// (a spec, a variables file) even though it is never written back.
func (s *Secret[T]) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &s.v) }

// LogValue implements slog.LogValuer.
func (s Secret[T]) LogValue() slog.Value { return slog.StringValue(Redacted) }

// GobEncode implements gob.GobEncoder; it carries the value, for the
// journal, which seals what it encodes (see the type's documentation).
// Anything else that gob-encodes a Secret must protect the result like the
// secret itself.
func (s Secret[T]) GobEncode() ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s.v); err != nil {
		return nil, fmt.Errorf("attr: encoding secret: %w", err)
	}
	return buf.Bytes(), nil
}

// GobDecode implements gob.GobDecoder.
func (s *Secret[T]) GobDecode(b []byte) error {
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s.v); err != nil {
		return fmt.Errorf("attr: decoding secret: %w", err)
	}
	return nil
}

// secretValue lets untyped code recognise a Secret of any T.
type secretValue interface{ isSecret() }

func (Secret[T]) isSecret() {}

// IsSecret reports whether v is a Secret of any type.
func IsSecret(v any) bool {
	_, ok := v.(secretValue)
	return ok
}

// concealer lets ConcealAs build a Secret[T] for a T known only at run time.
type concealer interface{ concealAny(v any) (any, bool) }

func (Secret[T]) concealAny(v any) (any, bool) {
	t, ok := v.(T)
	if !ok {
		return nil, false
	}
	return Secret[T]{v: t}, true
}

// ConcealAs wraps v in the Secret type t. It reports false when t is not a
// Secret type or v is not of its element type. Binders use it to deliver a
// plain value into a Secret field.
func ConcealAs(t reflect.Type, v any) (any, bool) {
	c, ok := reflect.Zero(t).Interface().(concealer)
	if !ok {
		return nil, false
	}
	return c.concealAny(v)
}

// Holding says whether the values of a type hold secrets.
type Holding uint8

// Holdings.
const (
	// HoldsNoSecret: no value of the type can hold a Secret.
	HoldsNoSecret Holding = iota
	// HoldsSecret: the type is a Secret, or has one in a field, an element
	// or behind a pointer, so every value may carry one.
	HoldsSecret
	// MayHoldSecret: the type has no Secret of its own but holds interface
	// values, which may be Secrets; only the value can tell (ContainsSecret).
	MayHoldSecret
)

var secretType = reflect.TypeFor[secretValue]()

var holdings sync.Map // reflect.Type → Holding

// SecretsIn says whether values of type t hold secrets. The graph uses it
// to know, before anything runs, which outputs its journal must seal and
// which input digests it must key. It looks through struct fields
// (exported or not), pointers, slices, arrays and maps; the answer is
// cached per type.
func SecretsIn(t reflect.Type) Holding {
	if t == nil {
		return HoldsNoSecret
	}
	if h, ok := holdings.Load(t); ok {
		return h.(Holding)
	}
	h := secretsIn(t, map[reflect.Type]bool{})
	holdings.Store(t, h)
	return h
}

func secretsIn(t reflect.Type, seen map[reflect.Type]bool) Holding {
	if seen[t] {
		return HoldsNoSecret // a recursive type: what it holds is found on another path
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return MayHoldSecret
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return secretsIn(t.Elem(), seen)
	case reflect.Map:
		return max(secretsIn(t.Key(), seen), secretsIn(t.Elem(), seen))
	case reflect.Struct:
		if t.Implements(secretType) {
			return HoldsSecret
		}
		h := HoldsNoSecret
		for i := 0; i < t.NumField() && h != HoldsSecret; i++ {
			switch secretsIn(t.Field(i).Type, seen) {
			case HoldsSecret:
				h = HoldsSecret
			case MayHoldSecret:
				h = MayHoldSecret
			}
		}
		return h
	}
	return HoldsNoSecret
}

// ContainsSecret reports whether v is or contains a Secret, looking
// through interfaces, pointers, slices, arrays, maps and struct fields
// (exported or not), at most 64 levels deep.
func ContainsSecret(v any) bool { return containsSecret(reflect.ValueOf(v), 0) }

func containsSecret(v reflect.Value, depth int) bool {
	if !v.IsValid() || depth > maxDepth {
		return false
	}
	t := v.Type()
	if t.Kind() != reflect.Interface && SecretsIn(t) == HoldsNoSecret {
		return false
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer:
		return !v.IsNil() && containsSecret(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if containsSecret(v.Index(i), depth+1) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if containsSecret(it.Key(), depth+1) || containsSecret(it.Value(), depth+1) {
				return true
			}
		}
	case reflect.Struct:
		if t.Implements(secretType) {
			return true
		}
		for i := 0; i < v.NumField(); i++ {
			if containsSecret(v.Field(i), depth+1) {
				return true
			}
		}
	}
	return false
}
