package graph

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
)

// wire finds what every node-role waits for: the producers of its inputs,
// chosen by role.Input.Resolve (the one wiring rule, which role.Def.Bind
// and the spec loader use too), and the roles its Meta.Requires names. It
// also checks, when it can, that the services its Uses inputs need exist.
func (b *builder) wire() error {
	d, nrs := b.d, b.nrs
	// Candidate producers in (node, role) order, as Resolve returns them:
	// grouped by node (cheaper than comparing node names all along the
	// sort), each node's list sorted by role.
	// Node-roles are added to their node's list role by role, in the
	// order of the roles' names: each list comes out sorted, with no
	// comparison of names per node.
	roleNames := make([]string, len(b.roleSlots))
	for name, slot := range b.roleSlots {
		roleNames[slot] = name
	}
	byName := make([]int, len(roleNames)) // role slots in name order
	for k := range byName {
		byName[k] = k
	}
	slices.SortFunc(byName, func(a, b int) int { return strings.Compare(roleNames[a], roleNames[b]) })
	ofRole := make([][]int32, len(roleNames))
	for i := range nrs {
		slot := b.infoOf[i].roleSlot
		ofRole[slot] = append(ofRole[slot], int32(i))
	}
	// byNode[nodeIx+1]: service-scope node-roles (no node) first.
	byNode := make([][]int32, len(d.nodeList)+1)
	for _, slot := range byName {
		for _, i := range ofRole[slot] {
			k := nrs[i].nodeIx + 1
			byNode[k] = append(byNode[k], i)
		}
	}
	nodesByName := make([]int32, len(d.nodeList)) // node indices, by name
	for k := range nodesByName {
		nodesByName[k] = int32(k)
	}
	slices.SortFunc(nodesByName, func(a, b int32) int { return strings.Compare(d.nodeList[a].Name, d.nodeList[b].Name) })
	order := make([]int32, 0, len(nrs))
	order = append(order, byNode[0]...)
	for _, n := range nodesByName {
		order = append(order, byNode[n+1]...)
	}
	byType := make([][]int32, len(b.typeSlots)) // by type slot
	byRole := make([][]int32, len(b.roleSlots)) // by role slot
	publishers := map[string][]int32{}
	for _, i := range order {
		info := b.infoOf[i]
		byType[info.typeSlot] = append(byType[info.typeSlot], i)
		byRole[info.roleSlot] = append(byRole[info.roleSlot], i)
		for _, p := range info.schema.pubs {
			publishers[p.Attr] = append(publishers[p.Attr], i)
		}
		for _, a := range info.schema.aliases {
			publishers[a.attr] = append(publishers[a.attr], i)
		}
	}

	var errs *multierror.Error
	var pbuf [16]role.Producer
	var ps, big []role.Producer // candidates of one input, for Resolve
	var kept []int32            // their indices
	var m []int                 // what Resolve chose among them
	var wired, deps []int32     // one node-role's, copied to ints when done
	var ints int32Slab
	for i, nr := range nrs {
		wired, deps = wired[:0], deps[:0]
		for _, in := range b.infoOf[i].schema.inputs {
			var cands []int32
			switch in.Kind {
			case role.InputUses:
				continue // services: checked below
			case role.InputAttr:
				nr.hasAttr = true
				cands = publishers[in.Attr]
			case role.InputSame:
				cands = byNode[nr.nodeIx+1]
			default:
				if slot, ok := b.typeSlots[in.Type]; ok {
					cands = byType[slot]
				}
			}
			if in.Kind == role.InputAll {
				a, err := b.aggregateFor(i, in, cands)
				if err != nil {
					errs = multierror.Append(errs, err)
					continue
				}
				nr.peers = append(nr.peers, peerInput{field: in.Field, agg: a})
				if len(b.g.aggs[a].producers) > 0 && !slices.Contains(nr.aggs, a) {
					nr.aggs = append(nr.aggs, a)
				}
				continue
			}
			// Resolve decides; the candidates of a wiring input are cut to
			// those of its type first (Feeds requires it), which keeps the
			// list short when a node has many roles.
			// Short lists stay on the stack: copying producers into the
			// heap costs write barriers while the collector runs.
			ps, kept = pbuf[:0], kept[:0]
			if len(cands) > len(pbuf) {
				ps = big[:0]
			}
			wantSlot, typed := b.typeSlots[in.Type]
			for _, c := range cands {
				if in.Kind != role.InputAttr && (!typed || b.infoOf[c].typeSlot != wantSlot) {
					continue // not of the input's type (slots number output types)
				}
				ps, kept = append(ps, nrs[c].producer()), append(kept, c)
			}
			if cap(ps) > len(pbuf) {
				big = ps
			}
			cands = kept
			var err error
			m, err = in.Resolve(nr.meta.Name, nr.name, ps, m[:0])
			if err != nil {
				errs = multierror.Append(errs, err)
				continue
			}
			if in.Kind == role.InputAttr {
				if len(m) == 1 {
					p := cands[m[0]]
					if err := aliasFits(nrs, p, nr, in); err != nil {
						errs = multierror.Append(errs, err)
					}
					nr.pubs = append(nr.pubs, p)
					deps = append(deps, p)
				}
				continue
			}
			start := len(wired)
			for _, k := range m {
				wired = append(wired, cands[k])
			}
			deps = append(deps, wired[start:]...)
		}
		deps, err := b.requires(i, byRole, deps)
		if err != nil {
			errs = multierror.Append(errs, err)
		}
		if nr.def.UsesServices() {
			if err := nr.def.CheckUses(nr.usesEnv(d.services, true)); err != nil {
				errs = multierror.Append(errs, err)
			}
		}
		nr.wired = ints.copy(uniqueKeepOrder(wired))
		nr.deps = ints.copy(uniqueSorted(deps))
	}
	return errs.ErrorOrNil()
}

// int32Slab hands out copies of small int32 slices cut from shared
// blocks: the dependency lists of thousands of node-roles in a few
// allocations.
type int32Slab struct{ free []int32 }

// copy returns a copy of s (nil if s is empty), its capacity its length:
// appending to it never writes into another's.
func (is *int32Slab) copy(s []int32) []int32 {
	if len(s) == 0 {
		return nil
	}
	c := cut(&is.free, len(s), 4096)
	copy(c, s)
	return c
}

// requires appends to deps the node-roles that node-role i's
// Meta.Requires names: on its own node, or bound to the deployment (every
// bound instance, for cluster and service roles).
func (b *builder) requires(i int, byRole [][]int32, deps []int32) ([]int32, error) {
	nr := b.nrs[i]
	var errs *multierror.Error
	for _, req := range nr.meta.Requires {
		var found, bound []int32
		if slot, ok := b.roleSlots[req]; ok {
			bound = byRole[slot]
		}
		for _, p := range bound {
			q := b.nrs[p]
			switch {
			case p == int32(i):
			case nr.meta.Scope != role.ScopeNode: // cluster or service: every bound instance
				found = append(found, p)
			case q.name == nr.name || q.meta.Scope != role.ScopeNode:
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			where := "to the deployment"
			if nr.meta.Scope == role.ScopeNode {
				where = "on node " + nr.name + " or to the deployment"
			}
			errs = multierror.Append(errs, fmt.Errorf("graph: role %q on %s requires role %q, which is not bound %s; bind it, or fix the name in Meta.Requires", nr.meta.Name, orDeployment(nr.name), req, where))
		}
		deps = append(deps, found...)
	}
	return deps, errs.ErrorOrNil()
}

// aliasFits checks, at plan time, that an output published by
// PublishOutput fits the attribute input in of consumer nr.
func aliasFits(nrs []*nodeRole, producer int32, nr *nodeRole, in role.Input) error {
	for _, a := range nrs[producer].meta.aliases {
		if a.attr != in.Attr || attrFits(a.typ, in.Type) {
			continue
		}
		return &role.BindError{Role: nr.meta.Name, Node: nr.name, Field: in.Describe(),
			Looked: []string{"outputs published as attribute " + in.Attr},
			Err: fmt.Errorf("output %s of %s, published as %q, is a %v, which does not fit the field; publish an output of type %v",
				a.field, nrs[producer].id, a.attr, a.typ, in.Type)}
	}
	return nil
}

// attrFits reports whether a value of type have can fill an attribute
// input of type want, as role.Def.BindInput delivers it: assignable,
// or wrapped in or unwrapped from attr.Secret.
func attrFits(have, want reflect.Type) bool {
	if have.AssignableTo(want) {
		return true
	}
	if _, ok := attr.ConcealAs(want, reflect.Zero(have).Interface()); ok {
		return true
	}
	if attr.IsSecret(reflect.Zero(have).Interface()) {
		if m, ok := have.MethodByName("Reveal"); ok && m.Type.NumOut() == 1 {
			return m.Type.Out(0).AssignableTo(want)
		}
	}
	return false
}
