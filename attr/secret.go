package attr

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
)

// Redacted is what a secret prints as.
const Redacted = "[redacted]"

// Secret wraps a value that must never be printed. String, every fmt verb,
// JSON marshalling and slog all show [Redacted]; only Reveal gives the value.
//
// Use Secret[T] as the type of a role input or output field that carries a
// token, a password or a private key. Its gob encoding carries the value, so
// the graph's journal (which uses gob) keeps it; its JSON encoding does not.
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

// GobEncode implements gob.GobEncoder; it carries the value, for journals.
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
