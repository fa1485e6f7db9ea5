package graph

import (
	"slices"
	"strings"
)

// order links every node-role to what waits for it and numbers the
// node-roles in topological order (Kahn's algorithm, stable: ready
// node-roles in binding order), or reports a cycle.
func (b *builder) order() (*dag, error) {
	nrs, g := b.nrs, b.g
	for i, nr := range nrs {
		for _, p := range nr.deps {
			nrs[p].kids = append(nrs[p].kids, int32(i))
		}
	}
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
