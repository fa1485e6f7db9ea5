package graph

import (
	"reflect"
	"slices"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// producer is nr as the wiring rule (role.Input.Resolve) sees it.
func (nr *nodeRole) producer() role.Producer {
	return role.Producer{Role: nr.meta.Name, Node: nr.name, Scope: nr.meta.Scope, Out: nr.def.Out()}
}

// nodeRole is a role bound to a node (or to the deployment): the unit the
// executor schedules.
type nodeRole struct {
	id   string
	key  string // in the journal: journalPrefix + id
	def  *role.Def
	meta *roleMeta      // shared by the node-roles of one role
	node *provider.Node // nil for service scope
	name string         // node name, "" for service scope

	deps []int32 // the node-roles this waits for, unique, sorted (aggregates apart)
	aggs []int32 // the aggregates (All inputs) this waits for, unique
	// kids is everything that waits for this: node-roles, and aggregates
	// as len(dag.nrs)+index (the scheduler's vertices).
	kids  []int32
	wired []int32 // producers of Same and One inputs, unique, sorted by (node, role)
	pubs  []int32 // producers of attribute inputs (published outputs)
	peers []peerInput
	// nodeIx is the node's index in the deployment's nodes (-1 for
	// service scope): what the scheduler and wiring group by.
	nodeIx  int32
	hasAttr bool
}

// roleMeta is what the node-roles of one role share: its Meta, and the
// output fields published under other names (Deployment.PublishOutput).
type roleMeta struct {
	role.Meta
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

// peerInput is an All input and the aggregate that fills it.
type peerInput struct {
	field string
	agg   int32
}

// dag is a deployment expanded into node-roles, in topological order
// (every node-role after all it waits for).
type dag struct {
	d     *Deployment
	nrs   []*nodeRole
	index map[string]int32
	aggs  []*aggregate
	// peerSets reads the peer sets journaled by earlier runs (NewPlan
	// sets it).
	peerSets *peerSets
	dec      outputDecoders // for the journal's outputs
}

func nodeRoleID(roleName, node string) string {
	if node == "" {
		return roleName
	}
	return roleName + "@" + node
}

// build expands the deployment into node-roles, wires their inputs and
// orders them topologically. Wiring mistakes fail here, naming the role,
// the node and the field.
func build(d *Deployment) (*dag, error) {
	if err := d.Err(); err != nil {
		return nil, err
	}
	b := &builder{d: d}
	if err := b.expand(); err != nil {
		return nil, err
	}
	if err := b.wire(); err != nil {
		return nil, err
	}
	g, err := b.order()
	if err != nil {
		return nil, err
	}
	g.finishAggregates()
	return g, nil
}

// builder holds what the phases of build share.
type builder struct {
	d   *Deployment
	g   *dag
	nrs []*nodeRole
	// infoOf is each node-role's role's info.
	infoOf    []*defInfo
	typeSlots map[reflect.Type]int
	roleSlots map[string]int
	aggIndex  map[aggKey]int32 // shared aggregates
}

// defInfo is what build needs of a role, looked up once per role instead
// of once per node-role; slots number output types and role names, so
// that producers are listed in slices instead of maps.
type defInfo struct {
	meta     *roleMeta
	schema   *defSchema
	typeSlot int
	roleSlot int
}

// defSchema caches a role's input and output schema while building.
type defSchema struct {
	inputs  []role.Input
	pubs    []role.Published
	aliases []outputAlias
}

func orDeployment(node string) string {
	if node == "" {
		return "the deployment"
	}
	return "node " + node
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
