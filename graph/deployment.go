package graph

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
)

// Deployment describes what should exist: nodes grouped into pools, the
// roles bound to them, attribute values and rollout policies. It is only a
// description; [NewPlan] expands it into node-roles and decides what to run.
//
// Mistakes made while building a Deployment (a role whose shape is wrong, a
// node name used twice, an attribute value of the wrong type) are collected
// and reported together by [NewPlan], so building code reads as a list of
// statements without an error check after each.
//
// A Deployment is not safe for concurrent modification.
type Deployment struct {
	name      string
	nodes     map[string]int32 // index in nodeList
	nodeList  []*provider.Node // in the order added
	nodeOrder []string         // their names
	pools     map[string]*Pool
	binds     []binding
	attrs     *attr.Values
	nodeAttrs map[string]*attr.Values
	rollouts  map[string]Rollout
	outPubs   []outputPub
	services  *role.Services
	logger    *slog.Logger
	kek       *seal.KEK // UseKEK (secrets.go)
	errs      *multierror.Error
	// leaving are nodes that left but still exist (Leaving); deleter
	// deletes them once removed (DeleteNodesWith).
	leaving map[string]*provider.Node
	deleter NodeDeleter
}

// Pool is a named group of nodes in a deployment, the usual target of
// [Deployment.Bind].
type Pool struct {
	d     *Deployment
	name  string
	nodes []string
	ix    []int32 // the nodes' indices in the deployment's nodeList
	all   bool    // every node of the deployment, resolved at plan time
}

type binding struct {
	pool *Pool
	defs []*role.Def
	file string
	line int
}

// outputPub is one [Deployment.PublishOutput] call.
type outputPub struct {
	role, field, attr string
	file              string
	line              int
}

// Rollout is a role's rollout policy: a circuit breaker that stops the
// rollout when too many of its node-roles fail, and batches for upgrades.
// The zero value runs every node-role of the role at once and never stops.
type Rollout struct {
	// MaxFailed trips the breaker once this many node-roles of the role
	// have failed (after their retries); 0 means no count limit.
	MaxFailed int
	// MaxFailedFraction trips the breaker once more than this fraction of
	// the role's node-roles that run have failed (0.25: more than a
	// quarter); 0 means no fraction limit.
	MaxFailedFraction float64
	// Batch rolls the role out over its nodes in batches of this many
	// node-roles, in node-name order; each batch must succeed completely
	// before the next one starts. 0 means one batch.
	Batch int
	// BatchPercent is Batch as a percentage of the role's node-roles that
	// run (rounded up); it is used when Batch is 0.
	BatchPercent int
}

// NewDeployment returns an empty deployment called name. The name keys
// its journal in the store, so two deployments sharing one store must have
// different names.
func NewDeployment(name string) *Deployment {
	d := &Deployment{
		name:      name,
		nodes:     map[string]int32{},
		pools:     map[string]*Pool{},
		attrs:     attr.NewValues(),
		nodeAttrs: map[string]*attr.Values{},
		rollouts:  map[string]Rollout{},
	}
	if name == "" {
		d.fail(fmt.Errorf("graph: deployment has no name: pass one to NewDeployment"))
	}
	return d
}

// Name returns the deployment's name.
func (d *Deployment) Name() string { return d.name }

func (d *Deployment) fail(err error) { d.errs = multierror.Append(d.errs, err) }

// Err returns the mistakes collected while building the deployment, if
// any; [NewPlan] returns them too.
func (d *Deployment) Err() error { return d.errs.ErrorOrNil() }

// Pool adds nodes to the pool called name, creating it on first use, and
// returns it. Node names must be unique in the deployment; a node may
// belong to several pools (pass the same *provider.Node).
func (d *Deployment) Pool(name string, nodes ...*provider.Node) *Pool {
	p := d.pools[name]
	if p == nil {
		p = &Pool{d: d, name: name}
		d.pools[name] = p
	}
	p.Add(nodes...)
	return p
}

// Node returns the node called name, or nil.
func (d *Deployment) Node(name string) *provider.Node {
	if i, ok := d.nodes[name]; ok {
		return d.nodeList[i]
	}
	return nil
}

// AllNodes is a pool of every node in the deployment, whichever pool
// added it; it is resolved when the deployment is planned.
func (d *Deployment) AllNodes() *Pool { return &Pool{d: d, name: "*", all: true} }

// Add adds nodes to the pool.
func (p *Pool) Add(nodes ...*provider.Node) *Pool {
	d := p.d
	for _, n := range nodes {
		switch {
		case n == nil:
			d.fail(fmt.Errorf("graph: pool %q: nil node", p.name))
			continue
		case n.Name == "":
			d.fail(fmt.Errorf("graph: pool %q: a node has no name; every node needs a unique Name", p.name))
			continue
		}
		ix, ok := d.nodes[n.Name]
		if ok && d.nodeList[ix] != n {
			d.fail(fmt.Errorf("graph: pool %q: node name %q is already used by another node; node names must be unique in deployment %q", p.name, n.Name, d.name))
			continue
		} else if !ok {
			ix = int32(len(d.nodeList))
			d.nodes[n.Name] = ix
			d.nodeList = append(d.nodeList, n)
			d.nodeOrder = append(d.nodeOrder, n.Name)
		}
		if !p.all {
			p.nodes = append(p.nodes, n.Name)
			p.ix = append(p.ix, ix)
		}
	}
	return p
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Nodes returns the names of the pool's nodes, in the order they were
// added.
func (p *Pool) Nodes() []string {
	if p.all {
		return append([]string(nil), p.d.nodeOrder...)
	}
	return append([]string(nil), p.nodes...)
}

// Bind binds roles to the nodes of pool: a node-scope role once on every
// node, a cluster-scope role once on the pool's first node by name, a
// service-scope role once for the deployment (pool may then be nil).
// Roles are registered with their types by [role.Of], so a value that is
// not a role does not compile; a role whose shape role.Of found wrong is
// reported by [NewPlan]. Nodes added to the pool later are bound too.
//
//	d.Bind(members, role.Of(etcd.PeerURL{}), role.Of(etcd.Member{}))
func (d *Deployment) Bind(pool *Pool, roles ...*role.Def) {
	_, file, line, _ := runtime.Caller(1)
	b := binding{pool: pool, file: file, line: line}
	for _, def := range roles {
		if err := def.Err(); err != nil {
			d.fail(fmt.Errorf("graph: Bind at %s:%d: %w", file, line, err))
			continue
		}
		if pool == nil && def.Meta().Scope != role.ScopeService {
			d.fail(fmt.Errorf("graph: Bind at %s:%d: role %q has %s scope and needs a pool to bind to (use d.AllNodes() for every node)", file, line, def.Name(), def.Meta().Scope))
			continue
		}
		if pool != nil && pool.d != d {
			d.fail(fmt.Errorf("graph: Bind at %s:%d: pool %q belongs to another deployment", file, line, pool.name))
			continue
		}
		b.defs = append(b.defs, def)
	}
	d.binds = append(d.binds, b)
}

// PublishOutput publishes output field field (its Go name) of the role
// named roleName as the attribute attrName, as if the field were tagged
// `attr:"attrName"`: when a node-role of that role succeeds, the field's
// value is set in [attr.LayerOutput] with the provenance "output of
// ROLE on NODE", and roles whose attribute inputs take attrName wait for
// it and receive it. The same rules as for tagged outputs decide who sees
// it: consumers on the same node first, otherwise the output of a cluster
// or service role reaches every node; two visible producers of one
// attribute are an error. This is how a spec wires an output into an
// input with another name (Terraform-style references).
//
// The field's type must fit every consumer's input field (the same type,
// or the same type wrapped in or unwrapped from [attr.Secret]). Mistakes
// (an unbound role, a missing field, a type mismatch, an attribute the
// role already publishes from another field) are reported by [NewPlan].
// Publishing a field under the name its tag already gives it does
// nothing.
func (d *Deployment) PublishOutput(roleName, field, attrName string) {
	_, file, line, _ := runtime.Caller(1)
	if !attr.ValidName(attrName) {
		d.fail(fmt.Errorf("graph: PublishOutput at %s:%d: invalid attribute name %q for output %s of role %q: want dotted lowercase segments like \"etcd.cluster_token\"", file, line, attrName, field, roleName))
		return
	}
	d.outPubs = append(d.outPubs, outputPub{role: roleName, field: field, attr: attrName, file: file, line: line})
}

// SetRollout sets the rollout policy (breaker and batches) of the role
// named roleName.
func (d *Deployment) SetRollout(roleName string, r Rollout) {
	if r.MaxFailed < 0 || r.MaxFailedFraction < 0 || r.MaxFailedFraction > 1 || r.Batch < 0 || r.BatchPercent < 0 || r.BatchPercent > 100 {
		d.fail(fmt.Errorf("graph: rollout of role %q: %+v is out of range (counts >= 0, fraction in [0,1], percent in [0,100])", roleName, r))
		return
	}
	d.rollouts[roleName] = r
}

// Leaving names nodes that are no longer part of the deployment but still
// exist, so that the plan removes them ([Removal]): their node-roles are
// undone on them (through their Transport), in reverse dependency order,
// then they are deleted ([Deployment.DeleteNodesWith]) and forgotten.
// Nodes the journal knows node-roles of are found without it, but their
// undos then get a node with only a name; name every leaving node that
// still exists. A node may not be both in a pool and leaving.
func (d *Deployment) Leaving(nodes ...*provider.Node) {
	if d.leaving == nil {
		d.leaving = map[string]*provider.Node{}
	}
	for _, n := range nodes {
		if n == nil || n.Name == "" {
			d.fail(fmt.Errorf("graph: Leaving: a node without a name; leaving nodes are named like the deployment's"))
			continue
		}
		d.leaving[n.Name] = n
	}
}

// DeleteNodesWith sets what deletes a node that left the deployment, once
// its node-roles are undone; without it the plan only undoes and forgets
// them, and the application deletes the node itself. Package deploy's
// Deployment is one (deploy.Deployment.PlanRemovals sets it).
func (d *Deployment) DeleteNodesWith(nd NodeDeleter) { d.deleter = nd }

// UseServices sets the services the deployment's roles use: their
// [role.Uses] inputs are filled from s when the plan is made (a missing
// one fails the plan), and [role.Context.Services] returns it.
func (d *Deployment) UseServices(s *role.Services) { d.services = s }

// UseLogger sets the logger roles write to through [role.Context.Log];
// nil discards their logs.
func (d *Deployment) UseLogger(l *slog.Logger) { d.logger = l }

// Attrs returns the deployment's attribute values, for spec loaders that
// set values by name with their own provenance ([attr.Values.SetAny]).
// Values set here apply to every node; use the deployment or override
// layer in their [attr.Source].
func (d *Deployment) Attrs() *attr.Values { return d.attrs }

// NodeAttrs returns the attribute values of one node (created on first
// use); set them in [attr.LayerNode].
func (d *Deployment) NodeAttrs(node string) *attr.Values {
	vs := d.nodeAttrs[node]
	if vs == nil {
		vs = attr.NewValues()
		d.nodeAttrs[node] = vs
	}
	return vs
}

// Set sets the typed attribute k to v for the whole deployment. The
// value's provenance is the caller's file and line; an invalid value is
// reported by [NewPlan].
func Set[T any](d *Deployment, k attr.Key[T], v T) {
	_, file, line, _ := runtime.Caller(1)
	if err := attr.Set(d.attrs, k, v, attr.FromSpec(attr.LayerDeployment, file, line)); err != nil {
		d.fail(fmt.Errorf("graph: Set at %s:%d: %w", file, line, err))
	}
}

// SetNode sets the typed attribute k to v on one node, above the
// deployment's value.
func SetNode[T any](d *Deployment, node string, k attr.Key[T], v T) {
	_, file, line, _ := runtime.Caller(1)
	src := attr.FromSpec(attr.LayerNode, file, line)
	src.Node = node
	if err := attr.Set(d.NodeAttrs(node), k, v, src); err != nil {
		d.fail(fmt.Errorf("graph: SetNode at %s:%d: %w", file, line, err))
	}
}

// Override sets the typed attribute k to v above everything else,
// including role outputs: the operator's last word (a --set flag).
func Override[T any](d *Deployment, k attr.Key[T], v T) {
	_, file, line, _ := runtime.Caller(1)
	if err := attr.Set(d.attrs, k, v, attr.FromSpec(attr.LayerOverride, file, line)); err != nil {
		d.fail(fmt.Errorf("graph: Override at %s:%d: %w", file, line, err))
	}
}
