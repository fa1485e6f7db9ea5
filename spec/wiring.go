package spec

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"

	"github.com/masonops/mason/role"
)

// The loader checks references against the graph's own wiring rule
// (role.Input.Resolve, role.Producer.Reaches, role.Input.Feeds) applied to
// the node-roles Spec.Deployment will make, so a reference the loader
// accepts is wired by the graph to exactly the output it names.

// blockNodes are the node-roles a role block makes: one per node of its
// pools (node scope), one on each pool's first node (cluster scope; the
// graph binds the role once per pool), or one for the deployment
// (service scope).
type blockNodes struct {
	prods []role.Producer
	pools []string // the pool of each, "" for service scope
	// byNode is the first of prods on each node and next the one after
	// it on the same node (-1: none); global lists those that reach every
	// node (cluster and service scope): only they can reach a consumer
	// on a node they do not run on.
	byNode map[string]int
	next   []int
	global []int
}

// on returns the index of the first of bn's node-roles on node, or -1;
// bn.next[i] is the next one.
func (bn *blockNodes) on(node string) int {
	if i, ok := bn.byNode[node]; ok {
		return i
	}
	return -1
}

// nodesOf returns rb's node-roles; rb's pools must be known.
func (l *loader) nodesOf(rb *RoleBlock) *blockNodes {
	if bn := l.nodes[rb]; bn != nil {
		return bn
	}
	meta := rb.Def.Meta()
	size := 1
	if meta.Scope == role.ScopeNode {
		size = 0
		for _, pn := range rb.On {
			if p := l.pools[pn]; p != nil {
				size += len(p.Nodes)
			}
		}
	}
	bn := &blockNodes{byNode: make(map[string]int, size), prods: make([]role.Producer, 0, size),
		pools: make([]string, 0, size), next: make([]int, 0, size)}
	add := func(node, pool string) {
		first, dup := bn.byNode[node]
		if dup && meta.Scope == role.ScopeNode {
			return
		}
		p := role.Producer{Role: rb.Name, Node: node, Scope: meta.Scope, Out: rb.Def.Out()}
		i := len(bn.prods)
		bn.prods, bn.pools, bn.next = append(bn.prods, p), append(bn.pools, pool), append(bn.next, -1)
		if dup {
			for bn.next[first] >= 0 {
				first = bn.next[first]
			}
			bn.next[first] = i
		} else {
			bn.byNode[node] = i
		}
		if everywhere, _ := p.Reaches(""); everywhere {
			bn.global = append(bn.global, i)
		}
	}
	switch meta.Scope {
	case role.ScopeService:
		add("", "")
	case role.ScopeCluster:
		for _, pn := range rb.On {
			if p := l.pools[pn]; p != nil && len(p.Nodes) > 0 {
				first := p.Nodes[0]
				for _, n := range p.Nodes[1:] {
					first = min(first, n)
				}
				add(first, pn)
			}
		}
	default:
		for _, pn := range rb.On {
			if p := l.pools[pn]; p != nil {
				for _, n := range p.Nodes {
					add(n, pn)
				}
			}
		}
	}
	if l.nodes == nil {
		l.nodes = map[*RoleBlock]*blockNodes{}
	}
	l.nodes[rb] = bn
	return bn
}

// reaches reports whether an attribute a node-role of rb publishes
// reaches a consumer on node.
func (l *loader) reaches(rb *RoleBlock, node string) bool {
	bn := l.nodesOf(rb)
	for i := bn.on(node); i >= 0; i = bn.next[i] {
		if ok, _ := bn.prods[i].Reaches(node); ok {
			return true
		}
	}
	for _, i := range bn.global {
		if ok, _ := bn.prods[i].Reaches(node); ok {
			return true
		}
	}
	return false
}

// checkVisible checks that prod's output reaches consumer rb on every
// node rb runs on: through the attribute it publishes (in == nil), or
// into rb's role.Same input in.
func (l *loader) checkVisible(rb, prod *RoleBlock, in *role.Input, rng hcl.Range, diags *hcl.Diagnostics) {
	pn := l.nodesOf(prod)
	cons := l.nodesOf(rb)
	for k, c := range cons.prods {
		if in == nil && l.reaches(prod, c.Node) {
			continue
		}
		if in != nil {
			fed := false
			for i := pn.on(c.Node); i >= 0 && !fed; i = pn.next[i] {
				fed = in.Feeds(c.Node, pn.prods[i])
			}
			if fed {
				continue
			}
		}
		prodScope := prod.Def.Meta().Scope
		switch {
		case c.Node == "":
			*diags = append(*diags, errDiag(rng, "Output not visible to the consumer",
				fmt.Sprintf("Role %q runs on every node of its pools, and service role %q runs on none, so there is no one output to take. Reference a cluster or service role, or use a role.All input.", prod.Name, rb.Name)))
		case prodScope != role.ScopeNode:
			where := "on no node"
			if len(pn.prods) > 0 && pn.prods[0].Node != "" {
				where = "on node " + pn.prods[0].Node + " only"
			}
			*diags = append(*diags, errDiag(rng, "Output not visible to the consumer",
				fmt.Sprintf("Input %s takes the output of a role on the same node, but %s role %q runs %s, not on node %s (pool %q) where role %q runs. Make the field a role.One to take its single output on every node.", in.Describe(), prodScope, prod.Name, where, c.Node, cons.pools[k], rb.Name)))
		default:
			*diags = append(*diags, errDiag(rng, "Output not visible to the consumer",
				fmt.Sprintf("Role %q runs on node %s (pool %q), where role %q does not run; a node role's output is wired only to roles on the same node. Bind %q to pool %q too, or reference a cluster or service role.", rb.Name, c.Node, cons.pools[k], prod.Name, prod.Name, cons.pools[k])))
		}
		return
	}
}

// checkWiredTo checks that the graph wires rb's role.Same, role.One or
// role.All input in from prod alone, as the reference says: the graph
// picks producers by type, so another role producing in's type would be
// wired too (All), or make the input ambiguous (Same, One).
func (l *loader) checkWiredTo(rb, prod *RoleBlock, in *role.Input, rng hcl.Range, diags *hcl.Diagnostics) {
	// The candidates: the node-roles of the blocks producing in's type.
	var makers []*blockNodes
	for _, o := range l.s.Roles {
		if o.Def.Out() == in.Type {
			makers = append(makers, l.nodesOf(o))
		}
	}
	others := map[string]bool{}
	var err error
	var m []int
	collect := func(ps []role.Producer, node string) {
		var e error
		if m, e = in.Resolve(rb.Name, node, ps, m[:0]); e != nil && err == nil {
			err = e
		}
		for _, i := range m {
			if ps[i].Role != prod.Name {
				others[ps[i].Role] = true
			}
		}
	}
	var ps []role.Producer
	if in.Kind == role.InputSame {
		for _, c := range l.nodesOf(rb).prods {
			ps = ps[:0]
			for _, bn := range makers {
				for i := bn.on(c.Node); i >= 0; i = bn.next[i] {
					ps = append(ps, bn.prods[i])
				}
			}
			collect(ps, c.Node)
		}
	} else {
		for _, bn := range makers {
			ps = append(ps, bn.prods...)
		}
		collect(ps, "")
	}
	switch {
	case len(others) > 0:
		names := make([]string, 0, len(others))
		for n := range others {
			names = append(names, n)
		}
		sort.Strings(names)
		*diags = append(*diags, errDiag(rng, "Ambiguous wiring",
			fmt.Sprintf("The graph wires %s by type, and role %s also produces %v. Tag the field role:%q in Go, or bind only one producer.", in.Describe(), listNames(names), in.Type, prod.Name)))
	case err != nil && in.Kind == role.InputOne:
		*diags = append(*diags, errDiag(rng, "Several outputs for a single input",
			fmt.Sprintf("Input %s takes the one output of its type in the deployment, but role %q runs on %d nodes. Make the field a role.All, or reference a cluster or service role.", in.Describe(), prod.Name, len(l.nodesOf(prod).prods))))
	}
}

// overlap reports whether some consumer could see the attributes both a
// and b publish: whether they reach a common node (or the deployment's
// service roles).
func (l *loader) overlap(a, b *RoleBlock) bool {
	if a == b {
		return true
	}
	if l.reaches(a, "") && l.reaches(b, "") {
		return true
	}
	for _, p := range l.s.Pools {
		for _, n := range p.Nodes {
			if l.reaches(a, n) && l.reaches(b, n) {
				return true
			}
		}
	}
	return false
}
