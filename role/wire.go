package role

import (
	"reflect"
)

// Same is an input wired from the output of type T produced by a role on
// the same node. Tag the field `role:"name"` when several roles produce T.
type Same[T any] struct {
	Value T
	// Role is the producing role's name.
	Role string
}

// One is an input wired from the single output of type T in the whole
// deployment, whatever node produced it: the Swarm manager's join token for
// every worker. Tag the field `role:"name"` to pick the producer by name.
type One[T any] struct {
	Value T
	// Role and Node name the producer.
	Role string
	Node string
}

// All is an input wired from the outputs of type T of every node-role in
// the deployment, sorted by node name: cluster linking. Adding a node
// changes All for every consumer, which is how members learn of new peers.
type All[T any] []Peer[T]

// Peer is one element of an All: a producer's output and where it ran.
type Peer[T any] struct {
	Node  string
	Role  string
	Value T
}

// Values returns just the outputs, in node order.
func (a All[T]) Values() []T {
	out := make([]T, len(a))
	for i, p := range a {
		out[i] = p.Value
	}
	return out
}

// Nodes returns the producers' node names, in order.
func (a All[T]) Nodes() []string {
	out := make([]string, len(a))
	for i, p := range a {
		out[i] = p.Node
	}
	return out
}

// wire lets Describe recognise the wiring types whatever their T.
type wire interface {
	wireKind() (InputKind, reflect.Type)
}

func (Same[T]) wireKind() (InputKind, reflect.Type) { return InputSame, reflect.TypeFor[T]() }
func (One[T]) wireKind() (InputKind, reflect.Type)  { return InputOne, reflect.TypeFor[T]() }
func (All[T]) wireKind() (InputKind, reflect.Type)  { return InputAll, reflect.TypeFor[T]() }

// fill sets a wiring field from matched outputs. The field is addressable
// (Bind fills a new struct): it is set through a typed pointer, which
// costs no allocation, unlike reflect.Value.Set of a new value.
type filler interface {
	fill(field reflect.Value, outs []Output) error
}

func (Same[T]) fill(f reflect.Value, outs []Output) error {
	*f.Addr().Interface().(*Same[T]) = Same[T]{Value: outs[0].Value.(T), Role: outs[0].Role}
	return nil
}

func (One[T]) fill(f reflect.Value, outs []Output) error {
	*f.Addr().Interface().(*One[T]) = One[T]{Value: outs[0].Value.(T), Role: outs[0].Role, Node: outs[0].Node}
	return nil
}

func (All[T]) fill(f reflect.Value, outs []Output) error {
	a := make(All[T], len(outs))
	for i, o := range outs {
		a[i] = Peer[T]{Node: o.Node, Role: o.Role, Value: o.Value.(T)}
	}
	*f.Addr().Interface().(*All[T]) = a
	return nil
}
