package role

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Producer is a node-role whose output may fill other node-roles' inputs,
// as the wiring rules see it: which role, where it runs, what it produces.
type Producer struct {
	Role  string
	Node  string // "" for service scope
	Scope Scope
	Out   reflect.Type
}

// ID is "role@node", or the role's name for service scope.
func (p Producer) ID() string {
	if p.Node == "" {
		return p.Role
	}
	return p.Role + "@" + p.Node
}

// Reaches reports whether an attribute p publishes reaches a consumer on
// node ("" for a service-scope consumer), and whether it is local there:
// a node role's attributes reach the roles on its own node only; a
// cluster or service role's reach every node and the service roles.
func (p Producer) Reaches(node string) (reaches, local bool) {
	if node != "" && p.Node == node {
		return true, true
	}
	return p.Scope != ScopeNode, false
}

// Feeds reports whether p's output fills the wiring input in (Same, One
// or All) of a consumer on node: p produces in's type, is the role in's
// `role` tag names if it has one, and — for Same — runs on node.
func (in Input) Feeds(node string, p Producer) bool { return in.feeds(node, &p) }

func (in *Input) feeds(node string, p *Producer) bool {
	if !in.Kind.Wired() || p.Out == nil || p.Out != in.Type || (in.Role != "" && p.Role != in.Role) {
		return false
	}
	return in.Kind != InputSame || p.Node == node
}

// Resolve is mason's one wiring rule: it returns the indices in ps of the
// producers that fill input in of the node-role role@node (node "" for
// service scope), in (node, role) order, appended to dst.
//
// For a Same, One or All input, the producers are those that [Input.Feeds];
// none is an error unless the input is optional, and more than one is an
// error unless it is an All. For an attribute input, ps are the node-roles
// that publish in.Attr; of those that reach the consumer ([Producer.Reaches]),
// the ones on its own node win over cluster and service ones, and more
// than one is an error; none means the attribute comes from the layers
// (spec, defaults). A node-role never fills its own input. Errors are
// *BindError, naming the role, the node, the field and where it looked.
//
// The graph resolves every input with it when it plans, [Def.Bind] when
// it binds, and the spec loader when it checks references, so the three
// cannot disagree.
func (in Input) Resolve(role, node string, ps []Producer, dst []int) ([]int, error) {
	return in.resolve(role, node, ps, dst)
}

// resolve is Resolve; Bind calls it for every input of every node-role,
// through a pointer, since an Input is large to copy.
func (in *Input) resolve(role, node string, ps []Producer, dst []int) ([]int, error) {
	start := len(dst)
	if in.Kind == InputAttr {
		var global []int
		for i, p := range ps {
			if p.Role == role && p.Node == node {
				continue
			}
			switch reaches, local := p.Reaches(node); {
			case local:
				dst = append(dst, i)
			case reaches:
				global = append(global, i)
			}
		}
		if len(dst) == start {
			dst = append(dst, global...)
		}
		m := sortProducers(dst[start:], ps)
		if len(m) > 1 {
			return dst, in.bindError(role, node, "outputs published as attribute "+in.Attr,
				fmt.Errorf("ambiguous: published by %s; publish it from one role only", producerIDs(m, ps)))
		}
		return dst, nil
	}
	if !in.Kind.Wired() {
		return dst, fmt.Errorf("role %q: input %s is not wired from outputs", role, in.Describe())
	}
	var m []int
	if in.Kind == InputAll {
		// Every consumer's producers are the shared set, without itself.
		dst = in.peers(ps, dst)
		m = dst[start:]
		if k := slices.IndexFunc(m, func(i int) bool { return ps[i].Role == role && ps[i].Node == node }); k >= 0 {
			m = slices.Delete(m, k, k+1)
			dst = dst[:start+len(m)]
		}
	} else {
		for i := range ps {
			if p := &ps[i]; (p.Role != role || p.Node != node) && in.feeds(node, p) {
				dst = append(dst, i)
			}
		}
		m = sortProducers(dst[start:], ps)
	}
	switch {
	case len(m) == 0 && !in.Optional:
		return dst, in.bindError(role, node, in.lookedFor(node), errors.New("no role produced it"))
	case len(m) > 1 && in.Kind != InputAll:
		return dst, in.bindError(role, node, in.lookedFor(node),
			fmt.Errorf("ambiguous: produced by %s; tag the field `role:\"name\"` to choose", producerIDs(m, ps)))
	}
	return dst, nil
}

// Peers returns the indices in ps of the producers that fill All input
// in, in (node, role) order, appended to dst: the same set for every
// consumer, which [Input.Resolve] gives each one without itself (a
// node-role never fills its own input). A graph computes it once per
// producer set and shares it between the consumers that are not among
// the producers.
func (in Input) Peers(ps []Producer, dst []int) []int { return in.peers(ps, dst) }

func (in *Input) peers(ps []Producer, dst []int) []int {
	start := len(dst)
	if in.Kind != InputAll {
		return dst
	}
	for i := range ps {
		if in.feeds("", &ps[i]) {
			dst = append(dst, i)
		}
	}
	sortProducers(dst[start:], ps)
	return dst
}

func (in *Input) bindError(role, node, looked string, err error) *BindError {
	return &BindError{Role: role, Node: node, Field: in.Describe(), Looked: []string{looked}, Err: err}
}

// lookedFor says where the producers of a wiring input were looked for.
func (in *Input) lookedFor(node string) string {
	who := fmt.Sprintf("outputs of type %v", in.Type)
	if in.Role != "" {
		who += fmt.Sprintf(" from role %q", in.Role)
	}
	if in.Kind == InputSame {
		return who + " on node " + node
	}
	return who + " on every node of the deployment"
}

// sortProducers sorts indices into ps by (node, role), unless they are
// in that order already (the graph's lists are).
func sortProducers(m []int, ps []Producer) []int {
	if len(m) < 2 {
		return m
	}
	cmp := func(a, b int) int {
		if c := strings.Compare(ps[a].Node, ps[b].Node); c != 0 {
			return c
		}
		return strings.Compare(ps[a].Role, ps[b].Role)
	}
	if !slices.IsSortedFunc(m, cmp) {
		slices.SortStableFunc(m, cmp)
	}
	return m
}

func producerIDs(m []int, ps []Producer) string {
	ids := make([]string, len(m))
	for k, i := range m {
		ids[k] = ps[i].ID()
	}
	return strings.Join(ids, ", ")
}
