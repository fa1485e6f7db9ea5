package graph

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// nodeRole is a role bound to a node (or to the deployment): the unit the
// executor schedules.
type nodeRole struct {
	id   string
	def  *role.Def
	meta *role.Meta     // shared by the node-roles of one role
	node *provider.Node // nil for service scope
	name string         // node name, "" for service scope

	deps    []int32 // everything this waits for, unique, sorted
	kids    []int32 // everything that waits for this
	wired   []int32 // producers of wiring inputs, unique, sorted by (node, role)
	pubs    []int32 // producers of attribute inputs (published outputs)
	peers   []peerInput
	hasAttr bool
	// aliases are output fields published under other names
	// (Deployment.PublishOutput), shared by the node-roles of one role.
	aliases []outputAlias
}

// usesEnv is where nr's role.Uses inputs are found: the deployment's
// services, else the node's transport. planning leaves those of a node
// that does not exist yet for later.
func (nr *nodeRole) usesEnv(svcs *role.Services, planning bool) role.Env {
	env := role.Env{Node: nr.name, Services: svcs}
	if nr.node != nil {
		env.Transport = nr.node.Transport
		env.NodePending = planning && nr.node.Transport == nil
	}
	return env
}

// outputAlias is an output field published as an attribute by
// [Deployment.PublishOutput].
type outputAlias struct {
	field string // Go name
	attr  string
	index int
	typ   reflect.Type
}

// peerInput is an All input and its producers, for plans to say which
// peers were added or removed.
type peerInput struct {
	field     string
	producers []int32
}

// dag is a deployment expanded into node-roles, in topological order
// (every node-role after all it waits for).
type dag struct {
	d     *Deployment
	nrs   []*nodeRole
	index map[string]int32
}

func nodeRoleID(roleName, node string) string {
	if node == "" {
		return roleName
	}
	return roleName + "@" + node
}

// defSchema caches a role's input and output schema while building.
type defSchema struct {
	inputs  []role.Input
	pubs    []role.Published
	aliases []outputAlias
}

// build expands the deployment and orders it topologically. Wiring
// mistakes fail here, naming the role, the node and the field.
func build(d *Deployment) (*dag, error) {
	if err := d.Err(); err != nil {
		return nil, err
	}
	var errs *multierror.Error
	size := 0
	for _, b := range d.binds {
		n := 1
		if b.pool != nil {
			n = max(1, len(b.pool.Nodes()))
		}
		size += n * len(b.defs)
	}
	g := &dag{d: d, index: make(map[string]int32, size)}
	nrs := make([]*nodeRole, 0, size)
	all := make([]nodeRole, 0, size) // one allocation for every node-role
	// What build needs per role, looked up once per role instead of once
	// per node-role; slots number output types and role names, so that
	// producers are listed in slices instead of maps.
	type defInfo struct {
		meta     *role.Meta
		schema   *defSchema
		typeSlot int
		roleSlot int
	}
	infos := map[*role.Def]*defInfo{}
	typeSlots := map[reflect.Type]int{}
	roleSlots := map[string]int{}
	infoOf := make([]*defInfo, 0, size)
	add := func(def *role.Def, node *provider.Node, b binding) {
		name := ""
		if node != nil {
			name = node.Name
		}
		id := nodeRoleID(def.Name(), name)
		if _, dup := g.index[id]; dup {
			errs = multierror.Append(errs, fmt.Errorf("graph: role %q is bound twice to %s (again at %s:%d); bind each role once per node", def.Name(), orDeployment(name), b.file, b.line))
			return
		}
		g.index[id] = int32(len(nrs))
		if len(all) == cap(all) {
			all = make([]nodeRole, 0, 64)
		}
		info := infos[def]
		if info == nil {
			m := def.Meta()
			info = &defInfo{meta: &m, schema: &defSchema{inputs: def.Inputs(), pubs: def.Publishes()}}
			if len(d.outPubs) > 0 {
				var err error
				if info.schema.aliases, err = d.aliasesOf(def, info.schema.pubs); err != nil {
					errs = multierror.Append(errs, err)
				}
			}
			var ok bool
			if info.typeSlot, ok = typeSlots[def.Out()]; !ok {
				info.typeSlot = len(typeSlots)
				typeSlots[def.Out()] = info.typeSlot
			}
			if info.roleSlot, ok = roleSlots[m.Name]; !ok {
				info.roleSlot = len(roleSlots)
				roleSlots[m.Name] = info.roleSlot
			}
			infos[def] = info
		}
		all = append(all, nodeRole{id: id, def: def, meta: info.meta, node: node, name: name, aliases: info.schema.aliases})
		nrs = append(nrs, &all[len(all)-1])
		infoOf = append(infoOf, info)
	}
	for _, b := range d.binds {
		var nodes []string
		if b.pool != nil {
			nodes = b.pool.Nodes()
		}
		for _, def := range b.defs {
			switch def.Meta().Scope {
			case role.ScopeService:
				add(def, nil, b)
			case role.ScopeCluster:
				if len(nodes) == 0 {
					errs = multierror.Append(errs, fmt.Errorf("graph: cluster role %q is bound to pool %q, which has no nodes", def.Name(), b.pool.name))
					continue
				}
				first := nodes[0]
				for _, n := range nodes[1:] {
					if n < first {
						first = n
					}
				}
				add(def, d.nodes[first], b)
			default:
				for _, n := range nodes {
					add(def, d.nodes[n], b)
				}
			}
		}
	}
	for _, op := range d.outPubs {
		if _, ok := roleSlots[op.role]; !ok {
			errs = multierror.Append(errs, fmt.Errorf("graph: PublishOutput at %s:%d: role %q is not bound, so it has no output %s to publish as %q; bind it, or fix the name", op.file, op.line, op.role, op.field, op.attr))
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	// Sort producers by (node, role), as role.Input.Match does: grouped by
	// node (cheaper than comparing node names all along the sort), each
	// node's list sorted by role.
	byNode := make(map[string][]int32, len(d.nodes)+1)
	for i, nr := range nrs {
		byNode[nr.name] = append(byNode[nr.name], int32(i))
	}
	nodeNames := make([]string, 0, len(byNode))
	for n := range byNode {
		nodeNames = append(nodeNames, n)
	}
	slices.Sort(nodeNames)
	order := make([]int32, 0, len(nrs))
	for _, n := range nodeNames {
		l := byNode[n]
		slices.SortFunc(l, func(a, b int32) int { return strings.Compare(nrs[a].meta.Name, nrs[b].meta.Name) })
		order = append(order, l...)
	}
	byType := make([][]int32, len(typeSlots)) // by type slot
	byRole := make([][]int32, len(roleSlots)) // by role slot
	publishers := map[string][]int32{}
	for _, i := range order {
		info := infoOf[i]
		byType[info.typeSlot] = append(byType[info.typeSlot], i)
		byRole[info.roleSlot] = append(byRole[info.roleSlot], i)
		for _, p := range info.schema.pubs {
			publishers[p.Attr] = append(publishers[p.Attr], i)
		}
		for _, a := range info.schema.aliases {
			publishers[a.attr] = append(publishers[a.attr], i)
		}
	}
	producersOf := func(t reflect.Type) []int32 {
		if slot, ok := typeSlots[t]; ok {
			return byType[slot]
		}
		return nil
	}
	for i, nr := range nrs {
		self := int32(i)
		var deps []int32
		for _, in := range infoOf[i].schema.inputs {
			switch in.Kind {
			case role.InputAttr:
				nr.hasAttr = true
				ps := publishers[in.Attr]
				var local, global []int32
				for _, p := range ps {
					switch {
					case p == self:
					case nrs[p].name == nr.name && nr.name != "":
						local = append(local, p)
					case nrs[p].meta.Scope != role.ScopeNode:
						global = append(global, p)
					}
				}
				if len(local) == 0 {
					local = global
				}
				switch len(local) {
				case 0:
				case 1:
					if err := aliasFits(nrs, local[0], nr, in); err != nil {
						errs = multierror.Append(errs, err)
					}
					nr.pubs = append(nr.pubs, local[0])
					deps = append(deps, local[0])
				default:
					errs = multierror.Append(errs, &role.BindError{Role: nr.meta.Name, Node: nr.name, Field: in.Describe(),
						Looked: []string{"outputs published as attribute " + in.Attr},
						Err:    fmt.Errorf("ambiguous: published by %s; publish it from one role only", g.describe(nrs, local))})
				}
				continue
			}
			if in.Kind == role.InputUses {
				continue // services: checked below
			}
			var cands []int32
			if in.Kind == role.InputSame {
				cands = byNode[nr.name] // filtered by type below
			} else {
				cands = producersOf(in.Type)
			}
			var mbuf [4]int32
			m := mbuf[:0]
			for _, c := range cands {
				if c == self || (in.Role != "" && nrs[c].meta.Name != in.Role) || nrs[c].def.Out() != in.Type {
					continue
				}
				m = append(m, c)
			}
			switch {
			case len(m) == 0 && in.Optional:
			case len(m) == 0:
				errs = multierror.Append(errs, &role.BindError{Role: nr.meta.Name, Node: nr.name, Field: in.Describe(),
					Looked: []string{lookedFor(in, nr.name)}, Err: errors.New("no role produced it")})
			case len(m) > 1 && in.Kind != role.InputAll:
				errs = multierror.Append(errs, &role.BindError{Role: nr.meta.Name, Node: nr.name, Field: in.Describe(),
					Looked: []string{lookedFor(in, nr.name)},
					Err:    fmt.Errorf("ambiguous: produced by %s; tag the field `role:\"name\"` to choose", g.describe(nrs, m))})
			}
			if in.Kind == role.InputAll {
				nr.peers = append(nr.peers, peerInput{field: in.Field, producers: slices.Clone(m)})
			}
			nr.wired = append(nr.wired, m...)
			deps = append(deps, m...)
		}
		for _, req := range nr.meta.Requires {
			var found, bound []int32
			if slot, ok := roleSlots[req]; ok {
				bound = byRole[slot]
			}
			for _, p := range bound {
				q := nrs[p]
				switch {
				case p == self:
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
		if nr.def.UsesServices() {
			if err := nr.def.CheckUses(nr.usesEnv(d.services, true)); err != nil {
				errs = multierror.Append(errs, err)
			}
		}
		nr.wired = uniqueKeepOrder(nr.wired)
		nr.deps = uniqueSorted(deps)
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	for i, nr := range nrs {
		for _, p := range nr.deps {
			nrs[p].kids = append(nrs[p].kids, int32(i))
		}
	}
	// Kahn's algorithm; stable: ready node-roles in binding order.
	need := make([]int32, len(nrs))
	var queue []int32
	for i, nr := range nrs {
		need[i] = int32(len(nr.deps))
		if need[i] == 0 {
			queue = append(queue, int32(i))
		}
	}
	topo := make([]int32, 0, len(nrs))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		topo = append(topo, i)
		for _, k := range nrs[i].kids {
			if need[k]--; need[k] == 0 {
				queue = append(queue, k)
			}
		}
	}
	if len(topo) != len(nrs) {
		return nil, findCycle(nrs, need)
	}
	// Renumber in topological order.
	remap := make([]int32, len(nrs))
	for newI, oldI := range topo {
		remap[oldI] = int32(newI)
	}
	g.nrs = make([]*nodeRole, len(nrs))
	for oldI, nr := range nrs {
		for _, s := range []*[]int32{&nr.deps, &nr.kids, &nr.wired, &nr.pubs} {
			for k, v := range *s {
				(*s)[k] = remap[v]
			}
		}
		for _, p := range nr.peers {
			for k, v := range p.producers {
				p.producers[k] = remap[v]
			}
		}
		slices.Sort(nr.deps)
		slices.Sort(nr.kids)
		g.nrs[remap[oldI]] = nr
		g.index[nr.id] = remap[oldI]
	}
	return g, nil
}

// aliasesOf resolves the PublishOutput calls for def's role against its
// output type.
func (d *Deployment) aliasesOf(def *role.Def, tagged []role.Published) ([]outputAlias, error) {
	var out []outputAlias
	var errs *multierror.Error
	t := def.Out()
next:
	for _, op := range d.outPubs {
		if op.role != def.Name() {
			continue
		}
		where := fmt.Sprintf("graph: PublishOutput at %s:%d: output %s of role %q", op.file, op.line, op.field, op.role)
		var f reflect.StructField
		ok := t.Kind() == reflect.Struct
		if ok {
			f, ok = t.FieldByName(op.field)
			ok = ok && len(f.Index) == 1 && f.IsExported()
		}
		if !ok {
			var names []string
			for i := 0; t.Kind() == reflect.Struct && i < t.NumField(); i++ {
				if t.Field(i).IsExported() {
					names = append(names, t.Field(i).Name)
				}
			}
			errs = multierror.Append(errs, fmt.Errorf("%s: %v has no such exported field (it has: %s); name a field of the role's output by its Go name", where, t, strings.Join(names, ", ")))
			continue
		}
		for _, p := range tagged {
			if p.Attr != op.attr {
				continue
			}
			if p.Field != op.field {
				errs = multierror.Append(errs, fmt.Errorf("%s: the role already publishes attribute %q from output %s (its tag); publish another name, or change the tag", where, op.attr, p.Field))
			}
			continue next // already published under this name by its tag
		}
		for _, a := range out {
			if a.attr != op.attr {
				continue
			}
			if a.field != op.field {
				errs = multierror.Append(errs, fmt.Errorf("%s: attribute %q is already published from output %s of the same role; publish each attribute from one field", where, op.attr, a.field))
			}
			continue next
		}
		out = append(out, outputAlias{field: f.Name, attr: op.attr, index: f.Index[0], typ: f.Type})
	}
	return out, errs.ErrorOrNil()
}

// aliasFits checks, at plan time, that an output published by
// PublishOutput fits the attribute input in of consumer nr.
func aliasFits(nrs []*nodeRole, producer int32, nr *nodeRole, in role.Input) error {
	for _, a := range nrs[producer].aliases {
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

func orDeployment(node string) string {
	if node == "" {
		return "the deployment"
	}
	return "node " + node
}

func lookedFor(in role.Input, node string) string {
	who := fmt.Sprintf("outputs of type %v", in.Type)
	if in.Role != "" {
		who += fmt.Sprintf(" from role %q", in.Role)
	}
	if in.Kind == role.InputSame {
		return who + " on node " + node
	}
	return who + " on every node of the deployment"
}

func (g *dag) describe(nrs []*nodeRole, is []int32) string {
	parts := make([]string, len(is))
	for k, i := range is {
		parts[k] = nrs[i].id
	}
	return strings.Join(parts, ", ")
}

func uniqueSorted(s []int32) []int32 {
	if len(s) < 2 {
		return s
	}
	slices.Sort(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

func uniqueKeepOrder(s []int32) []int32 {
	if len(s) < 2 {
		return s
	}
	if len(s) <= 16 { // small: a scan beats a map
		out := s[:1]
		for _, v := range s[1:] {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out
	}
	seen := make(map[int32]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// CycleError reports node-roles that wait for each other. Path lists the
// cycle, starting and ending with the same node-role; each one waits for
// the next (it requires it, or consumes its output).
type CycleError struct {
	Path []string
}

// Error spells out the cycle.
func (e *CycleError) Error() string {
	return "graph: dependency cycle: " + strings.Join(e.Path, " → ") +
		" (each waits for the next through Meta.Requires or an input; break one of these dependencies)"
}

// findCycle finds a cycle among the node-roles Kahn's algorithm could not
// order (need > 0) by walking their dependencies.
func findCycle(nrs []*nodeRole, need []int32) error {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(nrs))
	var stack []int32
	var found []int32
	var visit func(i int32) bool
	visit = func(i int32) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, p := range nrs[i].deps {
			if need[p] == 0 {
				continue // ordered fine; not part of a cycle
			}
			if color[p] == grey {
				for k := len(stack) - 1; k >= 0; k-- {
					if stack[k] == p {
						found = append(append([]int32(nil), stack[k:]...), p)
						return true
					}
				}
			}
			if color[p] == white && visit(p) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return false
	}
	for i := range nrs {
		if need[i] > 0 && color[i] == white && visit(int32(i)) {
			break
		}
	}
	path := make([]string, len(found))
	for k, i := range found {
		path[k] = nrs[i].id
	}
	return &CycleError{Path: path}
}

// attrsFor returns the attribute values visible on node: the deployment's
// layers and the node's own. Callers must not modify the result.
func (d *Deployment) attrsFor(node string, cache map[string]*attr.Values) *attr.Values {
	nv := d.nodeAttrs[node]
	if nv == nil {
		return d.attrs
	}
	if vs, ok := cache[node]; ok {
		return vs
	}
	vs := d.attrs.Clone()
	vs.Merge(nv)
	cache[node] = vs
	return vs
}
