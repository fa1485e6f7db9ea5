package graph

import "fmt"

// sched is the executor's deterministic core: which node-role may start
// next, and what a success or a failure releases or blocks. It knows no
// time, goroutines or I/O, so the executor and the makespan benchmark's
// virtual clock drive the same code.
type sched struct {
	// Vertices [0, real) are node-roles; the others are barriers
	// (aggregates): done, never run, once all they wait for is.
	real    int32
	kids    [][]int32
	need    []int32 // unfinished dependencies (and batch gates)
	node    []int32 // node index, -1 for none
	prio    []int64 // longest remaining path, including itself
	state   []State
	perNode int32
	busy    []int32
	ready   minHeap[heapItem]
	parked  []minHeap[heapItem]
	fifo    bool
	seq     uint64

	// Rollouts.
	roleOf  []int32 // index into roles, -1 for roles without a policy
	roles   []*rollState
	batchOf []int32

	by  []int32  // what blocked it, -1 for a breaker
	why []string // why it is blocked (beyond "blocked by")

	// trans collects the blocked transitions since the caller last took them.
	trans []int32
}

type rollState struct {
	name     string
	policy   Rollout
	total    int
	failed   int
	tripped  bool
	members  []int32
	batches  [][]int32
	left     []int
	bad      []bool
	maxLimit string
}

// heapItem is a node-role in the ready or parked heaps, by a key fixed
// when it becomes ready.
type heapItem struct {
	key int64 // FIFO: order of readiness; else minus the longest path
	i   int32 // ties: lower index first
}

func (a heapItem) less(b heapItem) bool { return a.key < b.key || (a.key == b.key && a.i < b.i) }

// newSched prepares the core for len(est) node-roles and, after them,
// len(kids)-len(est) barriers. deps counts each vertex's dependencies;
// node is each one's node index (-1 for none, and for barriers); est is
// each node-role's estimated duration (any unit).
func newSched(kids [][]int32, deps []int32, node []int32, nodes int, est []int64, perNode int, fifo bool) *sched {
	n := len(kids)
	s := &sched{real: int32(len(est)), kids: kids, need: append([]int32(nil), deps...), node: node, prio: make([]int64, n),
		state: make([]State, n), perNode: int32(perNode), busy: make([]int32, nodes),
		parked: make([]minHeap[heapItem], nodes), fifo: fifo,
		roleOf: make([]int32, n), batchOf: make([]int32, n), by: make([]int32, n), why: make([]string, n)}
	if s.perNode < 1 {
		s.perNode = 1
	}
	// Kids come later in topological order: walk backwards. A barrier's
	// kids come after every node-role it waits for, so its priority is
	// known by the time the last of those (in that order) asks for it.
	barrier := make([]bool, n-len(est))
	prio := func(k int32) int64 {
		if k >= s.real && !barrier[k-s.real] {
			barrier[k-s.real] = true
			for _, c := range kids[k] {
				s.prio[k] = max(s.prio[k], s.prio[c])
			}
		}
		return s.prio[k]
	}
	for i := len(est) - 1; i >= 0; i-- {
		var best int64
		for _, k := range kids[i] {
			best = max(best, prio(k))
		}
		s.prio[i] = best + est[i]
	}
	for i := range s.state {
		s.state[i] = StatePending
		s.roleOf[i] = -1
		s.batchOf[i] = -1
		s.by[i] = -1
	}
	return s
}

// addRollout attaches a rollout policy to the node-roles members (in node
// order), which are those of one role that will run.
func (s *sched) addRollout(name string, r Rollout, members []int32) {
	rs := &rollState{name: name, policy: r, total: len(members), members: members}
	idx := int32(len(s.roles))
	s.roles = append(s.roles, rs)
	size := r.Batch
	if size == 0 && r.BatchPercent > 0 {
		size = (len(members)*r.BatchPercent + 99) / 100
	}
	if size <= 0 || size > len(members) {
		size = len(members)
	}
	for start := 0; start < len(members); start += size {
		end := min(start+size, len(members))
		b := int32(len(rs.batches))
		rs.batches = append(rs.batches, members[start:end])
		rs.left = append(rs.left, end-start)
		rs.bad = append(rs.bad, false)
		for _, m := range members[start:end] {
			s.batchOf[m] = b
			if b > 0 {
				s.need[m]++ // gate: the previous batch must pass
			}
		}
	}
	for _, m := range members {
		s.roleOf[m] = idx
	}
	var lim []string
	if r.MaxFailed > 0 {
		lim = append(lim, fmt.Sprintf("max %d", r.MaxFailed))
	}
	if r.MaxFailedFraction > 0 {
		lim = append(lim, fmt.Sprintf("max fraction %g", r.MaxFailedFraction))
	}
	if len(lim) > 0 {
		rs.maxLimit = lim[0]
		if len(lim) > 1 {
			rs.maxLimit += ", " + lim[1]
		}
	}
}

// skip marks i as converged without running; call in topological order
// before start.
func (s *sched) skip(i int32) {
	s.state[i] = StateSkipped
	for _, k := range s.kids[i] {
		if s.need[k]--; s.need[k] == 0 && k >= s.real {
			s.skip(k) // a barrier whose node-roles all skip
		}
	}
}

// start queues every node-role that is ready.
func (s *sched) start() {
	for i := range s.real {
		if s.state[i] == StatePending && s.need[i] == 0 {
			s.push(i)
		}
	}
}

func (s *sched) push(i int32) {
	s.seq++
	key := -s.prio[i]
	if s.fifo {
		key = int64(s.seq)
	}
	s.ready.push(heapItem{key, i})
}

// next returns the best node-role that may start now (marking it running),
// or -1.
func (s *sched) next() int32 {
	for s.ready.len() > 0 {
		it := s.ready.pop()
		i := it.i
		if s.state[i] != StatePending {
			continue
		}
		if nd := s.node[i]; nd >= 0 {
			if s.busy[nd] >= s.perNode {
				s.parked[nd].push(it)
				continue
			}
			s.busy[nd]++
		}
		s.state[i] = StateRunning
		return i
	}
	return -1
}

// release frees i's node slot: it stopped running (whatever the outcome).
func (s *sched) release(i int32) {
	nd := s.node[i]
	if nd < 0 {
		return
	}
	s.busy[nd]--
	for s.parked[nd].len() > 0 {
		it := s.parked[nd].pop()
		if s.state[it.i] == StatePending {
			s.ready.push(it)
			return
		}
	}
}

// succeed records that i succeeded (or, skipped, found itself converged)
// and queues what became ready.
func (s *sched) succeed(i int32, skipped bool) {
	if skipped {
		s.state[i] = StateSkipped
	} else {
		s.state[i] = StateSucceeded
	}
	s.finished(i)
	s.batchDone(i, false)
}

// finished counts i done for what waits for it, and queues what became
// ready; a barrier that became ready is done at once.
func (s *sched) finished(i int32) {
	for _, k := range s.kids[i] {
		if s.need[k]--; s.need[k] == 0 && s.state[k] == StatePending {
			if k >= s.real {
				s.state[k] = StateSucceeded
				s.finished(k)
				continue
			}
			s.push(k)
		}
	}
}

// fail records that i failed; everything below it is blocked. It reports
// whether i's failure tripped its role's breaker.
func (s *sched) fail(i int32) (tripped *rollState) {
	s.state[i] = StateFailed
	s.blockBelow(i, i, "")
	if r := s.roleOf[i]; r >= 0 {
		rs := s.roles[r]
		rs.failed++
		p := rs.policy
		if !rs.tripped && ((p.MaxFailed > 0 && rs.failed >= p.MaxFailed) ||
			(p.MaxFailedFraction > 0 && float64(rs.failed) > p.MaxFailedFraction*float64(rs.total))) {
			rs.tripped = true
			tripped = rs
			why := fmt.Sprintf("rollout of role %q stopped: breaker tripped (%d of %d failed, %s)", rs.name, rs.failed, rs.total, rs.maxLimit)
			for _, m := range rs.members {
				if s.state[m] == StatePending {
					s.block(m, -1, why)
				}
				s.blockBelow(m, -1, why)
			}
		}
	}
	s.batchDone(i, true)
	return tripped
}

// blockBelow blocks every pending descendant of i.
func (s *sched) blockBelow(i, by int32, why string) {
	stack := append([]int32(nil), s.kids[i]...)
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch s.state[k] {
		case StatePending:
			s.block(k, by, why)
		case StateBlocked:
			continue // its descendants are already blocked
		}
		stack = append(stack, s.kids[k]...)
	}
}

func (s *sched) block(k, by int32, why string) {
	s.state[k] = StateBlocked
	s.by[k], s.why[k] = by, why
	if k < s.real {
		s.trans = append(s.trans, k)
		s.batchDone(k, true)
	}
}

// batchDone accounts for member i of a batched rollout reaching a final
// state: a bad batch blocks the later ones; a passed batch opens the next.
func (s *sched) batchDone(i int32, bad bool) {
	r, b := s.roleOf[i], s.batchOf[i]
	if r < 0 || b < 0 {
		return
	}
	rs := s.roles[r]
	rs.left[b]--
	if bad && !rs.bad[b] {
		rs.bad[b] = true
		for nb := int(b) + 1; nb < len(rs.batches); nb++ {
			why := fmt.Sprintf("batch %d of %d of role %q not started: batch %d did not pass", nb+1, len(rs.batches), rs.name, b+1)
			for _, m := range rs.batches[nb] {
				if s.state[m] == StatePending {
					by := i
					if s.state[i] == StateBlocked {
						by = s.by[i]
					}
					s.block(m, by, why)
					s.blockBelow(m, by, why)
				}
			}
		}
		return
	}
	if rs.left[b] == 0 && !rs.bad[b] && int(b)+1 < len(rs.batches) {
		for _, m := range rs.batches[b+1] {
			if s.need[m]--; s.need[m] == 0 && s.state[m] == StatePending {
				s.push(m)
			}
		}
	}
}

// takeBlocked returns the node-roles blocked since the last call.
func (s *sched) takeBlocked() []int32 {
	t := s.trans
	s.trans = nil
	return t
}
