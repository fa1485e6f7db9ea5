package graph

import (
	"slices"
	"strings"
)

// order links every node-role to what waits for it and numbers the
// node-roles in topological order (Kahn's algorithm, stable: ready
// node-roles in binding order), or reports a cycle. An aggregate is a
// vertex between its producers and its consumers (numbered after the
// node-roles), so an All input costs one edge per producer and one per
// consumer, not one per pair.
func (b *builder) order() (*dag, error) {
	nrs, g := b.nrs, b.g
	n := int32(len(nrs))
	// Every node-role's kids are a part of one slice: counted first.
	count := make([]int32, n)
	total := 0
	for _, nr := range nrs {
		for _, p := range nr.deps {
			count[p]++
		}
		total += len(nr.deps)
	}
	for _, agg := range g.aggs {
		if len(agg.producers) == 0 {
			continue // nothing waits for it
		}
		for _, p := range agg.producers {
			count[p]++
		}
		total += len(agg.producers)
	}
	kids := make([]int32, total)
	for i, nr := range nrs {
		if c := count[i]; c > 0 {
			nr.kids, kids = kids[:0:c], kids[c:]
		}
	}
	for i, nr := range nrs {
		for _, p := range nr.deps {
			nrs[p].kids = append(nrs[p].kids, int32(i))
		}
	}
	for a, agg := range g.aggs {
		if len(agg.producers) == 0 {
			continue
		}
		for _, p := range agg.producers {
			nrs[p].kids = append(nrs[p].kids, n+int32(a))
		}
	}
	need := make([]int32, int(n)+len(g.aggs))
	var queue []int32
	for i, nr := range nrs {
		need[i] = int32(len(nr.deps) + len(nr.aggs))
		if need[i] == 0 {
			queue = append(queue, int32(i))
		}
	}
	for a, agg := range g.aggs {
		need[n+int32(a)] = int32(len(agg.producers))
	}
	topo := make([]int32, 0, len(nrs))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		var kids []int32
		if i < n {
			topo = append(topo, i)
			kids = nrs[i].kids
		} else {
			kids = g.aggs[i-n].consumers
		}
		for _, k := range kids {
			if need[k]--; need[k] == 0 {
				queue = append(queue, k)
			}
		}
	}
	if len(topo) != len(nrs) {
		return nil, findCycle(g, nrs, need)
	}
	// Renumber in topological order.
	remap := make([]int32, len(nrs))
	for newI, oldI := range topo {
		remap[oldI] = int32(newI)
	}
	g.nrs = make([]*nodeRole, len(nrs))
	for oldI, nr := range nrs {
		for _, s := range []*[]int32{&nr.deps, &nr.wired, &nr.pubs} {
			for k, v := range *s {
				(*s)[k] = remap[v]
			}
		}
		for k, v := range nr.kids {
			if v < n {
				nr.kids[k] = remap[v]
			}
		}
		slices.Sort(nr.deps)
		slices.Sort(nr.kids)
		g.nrs[remap[oldI]] = nr
		if remap[oldI] != int32(oldI) { // bound in order already: mostly
			g.index[nr.id] = remap[oldI]
		}
	}
	for _, agg := range g.aggs {
		for _, s := range []*[]int32{&agg.producers, &agg.consumers} {
			for k, v := range *s {
				(*s)[k] = remap[v]
			}
		}
	}
	return g, nil
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
// order (need > 0) by walking their dependencies (through an aggregate,
// to each of its producers).
func findCycle(g *dag, nrs []*nodeRole, need []int32) error {
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
		deps := nrs[i].deps
		if len(nrs[i].aggs) > 0 {
			deps = slices.Clone(deps)
			for _, a := range nrs[i].aggs {
				deps = append(deps, g.aggs[a].producers...)
			}
		}
		for _, p := range deps {
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
