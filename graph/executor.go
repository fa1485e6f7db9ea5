package graph

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/role"
)

// Options tune [Apply].
type Options struct {
	// Parallelism bounds how many node-roles run at once; 0 means 8.
	Parallelism int
	// PerNode bounds how many node-roles run at once on one node; 0 means
	// 1. Service-scope node-roles have no node and no such bound.
	PerNode int
	// Events receives every transition; nil sends none.
	Events Subscriber
	// StopTimeout is how long node-roles already running may go on after
	// ctx is cancelled before their own context is cancelled too; 0 lets
	// them finish however long they take.
	StopTimeout time.Duration
	// Controller, when set, lets several processes apply the deployment
	// at once through one shared store: node-roles are claimed before they
	// run and the journal is fenced by the claims (see [Controller]). Nil
	// means this process is the deployment's only controller.
	Controller *Controller

	fifo bool        // for the makespan benchmark's baseline
	ctl  *controlled // set by Apply when Controller is
}

// Outcome is what became of one node-role in an Apply.
type Outcome struct {
	ID    string
	Role  string
	Node  string
	State State
	// Attempts counts runs in this Apply.
	Attempts int
	// Err is the last attempt's error, for StateFailed.
	Err error
	// BlockedBy names the node-role whose failure blocked this one.
	BlockedBy string
	// Why is the kind of reason it ran, was skipped, held or blocked;
	// Reason says it in words.
	Why    ReasonKind
	Reason string
	// Duration is the time spent running, retries included.
	Duration time.Duration
}

// Result is the outcome of an Apply, one Outcome per plan step, in plan
// order. Node-roles still StatePending were not started: the context was
// cancelled, or the journal failed.
type Result struct {
	Deployment string
	Outcomes   []Outcome
	// Removals says what became of each of the plan's Removals, in
	// order; a removal not started (one before it failed) is missing.
	Removals []Removed
	Elapsed  time.Duration
	index    map[string]int32
}

// Count returns how many node-roles ended in state st.
func (r *Result) Count(st State) int {
	n := 0
	for _, o := range r.Outcomes {
		if o.State == st {
			n++
		}
	}
	return n
}

// Outcome returns the outcome of node-role id.
func (r *Result) Outcome(id string) (Outcome, bool) {
	i, ok := r.index[id]
	if !ok {
		return Outcome{}, false
	}
	return r.Outcomes[i], true
}

// NodeRoleError is the failure of one node-role.
type NodeRoleError struct {
	ID       string
	Attempts int
	Err      error
}

// Error implements error.
func (e *NodeRoleError) Error() string {
	return fmt.Sprintf("%s failed after %d attempt(s): %v", e.ID, e.Attempts, e.Err)
}

// Unwrap returns the role's error.
func (e *NodeRoleError) Unwrap() error { return e.Err }

// BreakerError reports a rollout stopped by its role's breaker.
type BreakerError struct {
	Role string
	// Failed of Total node-roles of the role failed (by the end of the
	// Apply: some may fail after the trip, while finishing); the limits are
	// the role's Rollout policy.
	Failed, Total     int
	MaxFailed         int
	MaxFailedFraction float64
	// NotStarted counts node-roles (of the role and below it) that the
	// trip kept from starting.
	NotStarted int
}

// Error implements error.
func (e *BreakerError) Error() string {
	return fmt.Sprintf("graph: rollout of role %q stopped by its breaker: %d of %d node-roles failed (limits: max %d, max fraction %g); %d node-roles not started; fix the failures and apply again",
		e.Role, e.Failed, e.Total, e.MaxFailed, e.MaxFailedFraction, e.NotStarted)
}

// runResult is what a worker reports.
type runResult struct {
	i        int32
	out      any
	err      error
	skipped  bool
	seq      uint64 // of the succeeded record
	attempts int
	dur      time.Duration
	ended    time.Time // of the last attempt
	reason   string
	why      ReasonKind // of reason
	last     *success
	lastErr  error         // of the last attempt
	held     bool          // another controller holds its claim: park it (Options.Controller)
	started  time.Time     // of the first attempt
	succ     *success      // where its success goes (workerMem.success)
	rc       *role.Context // for its first attempt (workerMem.context)
}

// pendingDurable is a success waiting for its record to be durable; what
// is announced then is in the executor's Outcome of i.
type pendingDurable struct {
	seq uint64
	i   int32
}

// durableQueue holds successes waiting for their records to be durable,
// in sequence order. Workers journal successes in nearly that order, so
// a new one is placed by a short walk from the back rather than through
// a heap.
type durableQueue struct {
	s    []pendingDurable
	head int
}

func (q *durableQueue) len() int { return len(q.s) - q.head }

// peek returns the lowest sequence number's; q must not be empty.
func (q *durableQueue) peek() pendingDurable { return q.s[q.head] }

func (q *durableQueue) push(p pendingDurable) {
	if q.head > 0 && q.head == len(q.s) {
		q.s, q.head = q.s[:0], 0
	}
	q.s = append(q.s, p)
	for k := len(q.s) - 1; k > q.head && q.s[k-1].seq > p.seq; k-- {
		q.s[k], q.s[k-1] = q.s[k-1], p
	}
}

// pop removes and returns the lowest sequence number's; q must not be
// empty.
func (q *durableQueue) pop() pendingDurable {
	p := q.s[q.head]
	q.head++
	if q.head > 1024 && q.head > len(q.s)/2 { // keep the slice from growing without end
		q.s, q.head = q.s[:copy(q.s, q.s[q.head:])], 0
	}
	return p
}

type executor struct {
	p    *Plan
	o    Options
	s    *sched
	j    journal
	em   *emitter
	outs []any
	// last is each node-role's last success: the journal's until it runs
	// here; after a success here, only one with peer sets is kept.
	last []*success
	outc []Outcome
	// ctx is the apply context (retries stop with it); runCtx is what
	// roles get.
	ctx    context.Context
	runCtx context.Context
	trips  []trip
	codecs outputCodecs
	// Shared by every role context of this Apply.
	logger   *slog.Logger
	services *role.Services
	// outOf returns the output of node-role k, for binding.
	outOf func(k int32) any
	// aggs gathers the aggregates from outs.
	aggs *aggValues
	// mu guards the scheduler and what follows, which the workers and
	// run's goroutine change (run); wake is signalled when there may be
	// work, or the executor is done.
	mu   sync.Mutex
	wake *sync.Cond
	// running counts the node-roles in workers; stopping says nothing new
	// starts (ctx ended, the journal failed); finished, that the workers
	// are done.
	running            int
	stopping, finished bool
	// awaiting are successes waiting for their record to be durable; errs
	// collects the Apply's errors.
	awaiting durableQueue
	errs     *multierror.Error
	removed  []Removed // of the plan's removals (remove.go)
}

type trip struct {
	err *BreakerError
	rs  *rollState
}

// Apply runs a plan: every node-role planned to run, with bounded
// parallelism, ordered by longest remaining critical path, with retries,
// breakers and batches as the roles and the deployment ask. Every
// transition is journaled in the plan's store, so a later plan resumes
// where this one stopped.
//
// When ctx is cancelled Apply starts nothing new, waits for the node-roles
// already running (see Options.StopTimeout), persists the journal and
// returns. The error holds every *NodeRoleError, every *BreakerError and
// the context's or the journal's error, as one *Problems when there are
// several (the same failure on many nodes once); the Result says what
// became of each node-role either way.
//
// A plan is applied once: it holds what the journal said when it was
// made. Make a new plan to apply again.
func Apply(ctx context.Context, p *Plan, o Options) (*Result, error) {
	if !p.applied.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("graph: this plan of %s was already applied; make a new plan with NewPlan (the journal changed)", p.Deployment)
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 8
	}
	if o.PerNode <= 0 {
		o.PerNode = 1
	}
	if o.Controller != nil {
		return applyControlled(ctx, p, o)
	}
	j := p.newJournal()
	j.start()
	return apply(ctx, p, o, j)
}

// apply runs p on journal j: removals first, then the scheduler and the
// workers that take from it (run), each in a function of its own below.
func apply(ctx context.Context, p *Plan, o Options, j journal) (*Result, error) {
	began := time.Now()
	e := newExecutor(ctx, p, o, j)
	if err := writePeerSets(ctx, p); err != nil {
		_ = j.close()
		return &Result{Deployment: p.Deployment, Outcomes: e.outc, Elapsed: time.Since(began), index: p.g.index}, err
	}
	runCtx, runCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer runCancel()
	e.runCtx = runCtx
	if o.ctl != nil {
		defer context.AfterFunc(o.ctl.lost, runCancel)() // roles stop at once when the claims may be gone
	}
	if !e.removeLeft() { // nodes that left go first (remove.go)
		return e.finish(began)
	}
	e.schedule()
	e.announce(began)
	e.run(runCancel)
	return e.finish(began)
}

func newExecutor(ctx context.Context, p *Plan, o Options, j journal) *executor {
	n := len(p.g.nrs)
	e := &executor{p: p, o: o, j: j, em: &emitter{sub: o.Events, ctx: ctx},
		outs: append([]any(nil), p.outs...), last: make([]*success, n), outc: make([]Outcome, n),
		ctx: ctx}
	e.logger, e.services = p.d.logger, p.d.services
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.services == nil {
		e.services = role.NewServices()
	}
	e.outOf = func(k int32) any { return e.outs[k] }
	e.aggs = newAggValues(p.g, e.outOf)
	e.aggs.adopt(p.aggs, p.Steps)
	for i, st := range p.Steps {
		if r := p.recs[i]; r != nil {
			e.last[i] = r.Last
		}
		e.outc[i] = Outcome{ID: st.ID, Role: st.Role, Node: st.Node, State: StatePending, Why: st.Why, Reason: st.Reason}
	}
	return e
}

// schedule sets up the scheduler: what waits for what, which node each
// node-role runs on, the critical-path estimates and the rollout policies
// over the node-roles of each role that will run.
func (e *executor) schedule() {
	p, g := e.p, e.p.g
	kids, deps := g.schedGraph()
	nodeOf := make([]int32, len(kids))
	for i := range nodeOf {
		nodeOf[i] = -1
	}
	for i, nr := range g.nrs {
		nodeOf[i] = nr.nodeIx
	}
	e.s = newSched(kids, deps, nodeOf, len(p.d.nodeList), estimates(p), e.o.PerNode, e.o.fifo)
	members := map[string][]int32{}
	for i, st := range p.Steps {
		if _, ok := p.d.rollouts[st.Role]; ok && st.Action != ActionSkip {
			members[st.Role] = append(members[st.Role], int32(i))
		}
	}
	roleNames := make([]string, 0, len(members))
	for r := range members {
		roleNames = append(roleNames, r)
	}
	sort.Strings(roleNames)
	for _, r := range roleNames {
		m := members[r]
		sort.Slice(m, func(a, b int) bool { return g.nrs[m[a]].name < g.nrs[m[b]].name })
		e.s.addRollout(r, p.d.rollouts[r], m)
	}
}

// announce announces every node-role's first state — skipped, or
// pending — and journals it for those the journal knows, starts the
// scheduler, and fails the held ones.
func (e *executor) announce(began time.Time) {
	p := e.p
	var holds []int32
	n := 0
	for i, st := range p.Steps {
		if st.Action == ActionSkip || (st.Action != ActionHold && p.recs[i] != nil) {
			n++
		}
	}
	first := make([]record, 0, n) // the first records, in one allocation
	for i, st := range p.Steps {
		switch st.Action {
		case ActionSkip:
			e.s.skip(int32(i))
			e.outc[i].State = StateSkipped
			first = append(first, record{ID: st.ID, State: StateSkipped, Reason: st.Reason, At: began, Last: e.last[i], slot: int32(i) + 1})
			e.emit(int32(i), Event{State: StateSkipped, Why: st.Why, Reason: st.Reason})
		case ActionHold:
			holds = append(holds, int32(i))
		default:
			// A node-role the journal has never seen gets no pending
			// record: having none already says "never run" (to status and
			// the next plan alike), and its first record is written when
			// it starts or is blocked. One the journal knows gets one, so
			// that the journal stops saying it is done. On a store that
			// caps a Txn's operations (etcd), a first apply's pending
			// records would otherwise go out in many Txns ahead of the
			// first success.
			if p.recs[i] != nil {
				first = append(first, record{ID: st.ID, State: StatePending, Reason: st.Reason, At: began, Last: e.last[i], slot: int32(i) + 1})
			}
			e.emit(int32(i), Event{State: StatePending, Why: st.Why, Reason: st.Reason})
		}
	}
	e.j.appendAll(first) // events may go before their records are queued: they never say a record is durable
	e.s.start()
	for _, i := range holds {
		err := fmt.Errorf("held: %s", p.Steps[i].Reason)
		e.outc[i].State, e.outc[i].Err = StateFailed, err
		e.errs = multierror.Append(e.errs, &NodeRoleError{ID: p.Steps[i].ID, Err: err})
		e.emit(i, Event{State: StateFailed, Err: err, Why: p.Steps[i].Why, Reason: p.Steps[i].Reason})
		// No record: the journal keeps saying "running", so the hold
		// stays until someone forces the node-role.
		e.failed(i)
	}
}

// run runs the scheduled node-roles until nothing runs or waits any
// more, or ctx is cancelled (then the running ones finish, cancelled with
// runCancel after Options.StopTimeout). Parallelism workers take ready
// node-roles from the scheduler and hand back their results under e.mu —
// no goroutine in between, so a node-role costs no channel hand-off —
// and one more goroutine turns the journal's progress, freed claims and
// the end of ctx into the same changes. Their stacks, grown once by the
// calls into roles, are reused from node-role to node-role.
func (e *executor) run(runCancel context.CancelFunc) {
	o := e.o
	e.wake = sync.NewCond(&e.mu)
	var stopTimer *time.Timer
	quit := make(chan struct{})
	var events sync.WaitGroup
	events.Add(1)
	go func() {
		defer events.Done()
		done := e.ctx.Done()
		freed := o.ctl.freedC() // parked node-roles whose claim was freed
		for {
			select {
			case <-e.j.notify():
				e.mu.Lock()
			case i := <-freed:
				e.mu.Lock()
				o.ctl.unpark(e.s, i)
			case <-done:
				done = nil
				e.mu.Lock()
				e.stopping = true
				if o.StopTimeout > 0 {
					stopTimer = time.AfterFunc(o.StopTimeout, runCancel)
				}
			case <-quit:
				return
			}
			e.settle()
			e.mu.Unlock()
		}
	}()
	var workers sync.WaitGroup
	for range o.Parallelism {
		workers.Add(1)
		go func() {
			defer workers.Done()
			e.worker()
		}()
	}
	workers.Wait()
	close(quit)
	events.Wait()
	if stopTimer != nil {
		stopTimer.Stop()
	}
}

// worker takes ready node-roles and runs them until the executor is
// done.
func (e *executor) worker() {
	var wm workerMem
	e.mu.Lock()
	defer e.mu.Unlock()
	for !e.finished {
		i := int32(-1)
		if !e.stopping {
			i = e.s.next()
		}
		if i < 0 {
			if e.running == 0 && e.awaiting.len() == 0 && (e.stopping || e.o.ctl.parkedN() == 0) {
				e.finished = true
				e.wake.Broadcast()
				return
			}
			e.wake.Wait()
			continue
		}
		e.running++
		if e.em.on() && e.p.Steps[i].Action != ActionRunIfChanged {
			// Announced here, in scheduling order, so that events show
			// exactly what started before and after a breaker tripped.
			st := &e.p.Steps[i]
			e.emit(i, Event{State: StateRunning, Attempt: 1, Why: st.Why, Reason: st.Reason})
		}
		e.mu.Unlock()
		r := e.work(i, &wm)
		e.mu.Lock()
		e.running--
		e.result(r)
		e.settle()
	}
}

// settle notes a journal that failed (nothing new starts), announces the
// successes now durable, and wakes the workers that wait for work. e.mu
// is held.
func (e *executor) settle() {
	if e.j.err() != nil {
		e.stopping = true
	}
	e.settleDurable(e.running)
	e.wake.Broadcast()
}

// result takes a worker's result.
func (e *executor) result(r runResult) {
	e.s.release(r.i)
	if r.held {
		e.o.ctl.park(e.s, r.i, e.p.g.nrs[r.i].id)
		return
	}
	oc := &e.outc[r.i]
	oc.Attempts, oc.Duration = r.attempts, r.dur
	if r.reason != "" {
		oc.Why, oc.Reason = r.why, r.reason
	}
	switch {
	case r.err != nil:
		oc.State, oc.Err = StateFailed, r.err
		e.errs = multierror.Append(e.errs, &NodeRoleError{ID: e.p.g.nrs[r.i].id, Attempts: r.attempts, Err: r.err})
		e.emit(r.i, Event{State: StateFailed, Attempt: r.attempts, Duration: r.dur, Err: r.err, Why: oc.Why, Reason: oc.Reason})
		e.failed(r.i)
	case r.skipped:
		e.outs[r.i] = r.out
		oc.State = StateSkipped
		e.s.succeed(r.i, true)
		e.emit(r.i, Event{State: StateSkipped, Why: r.why, Reason: r.reason})
	default:
		// Dependents start only once the output is durable, so no later
		// step can consume an output a crash would lose.
		e.outs[r.i] = r.out
		// Once journaled, a success is read again only for its peer
		// sets (collectPeerSets): the others are let go, so that the
		// collector need not mark thousands of them to the end.
		e.last[r.i] = nil
		if len(r.last.Peers) > 0 {
			e.last[r.i] = r.last
		}
		e.awaiting.push(pendingDurable{r.seq, r.i})
	}
}

// settleDurable announces the successes whose records are now durable,
// releasing what waits for them; if the journal failed, the rest never
// will be.
func (e *executor) settleDurable(running int) {
	if e.awaiting.len() == 0 {
		return
	}
	dur := e.j.durable()
	for e.awaiting.len() > 0 && e.awaiting.peek().seq <= dur {
		a := e.awaiting.pop()
		oc := &e.outc[a.i]
		oc.State = StateSucceeded
		e.s.succeed(a.i, false)
		e.emit(a.i, Event{State: StateSucceeded, Attempt: oc.Attempts, Duration: oc.Duration, Why: oc.Why, Reason: oc.Reason})
	}
	if err := e.j.err(); err != nil && running == 0 {
		// These ran, but their records will never be durable.
		for e.awaiting.len() > 0 {
			a := e.awaiting.pop()
			e.outc[a.i].State = StateFailed
			e.outc[a.i].Err = fmt.Errorf("ran, but its output could not be journaled: %w", err)
		}
	}
}

// finish completes the breakers' counts, closes the journal and returns
// the result.
func (e *executor) finish(began time.Time) (*Result, error) {
	for _, t := range e.trips {
		t.err.Failed = t.rs.failed
	}
	if err := e.j.close(); err != nil {
		e.errs = multierror.Append(e.errs, err)
	} else if err := e.collectPeerSets(); err != nil {
		e.errs = multierror.Append(e.errs, err)
	}
	if err := e.ctx.Err(); err != nil {
		e.errs = multierror.Append(e.errs, fmt.Errorf("graph: apply of %s stopped: %w; %d node-roles not started (apply again to continue)", e.p.Deployment, err, e.count(StatePending)))
	}
	res := &Result{Deployment: e.p.Deployment, Outcomes: e.outc, Removals: e.removed, Elapsed: time.Since(began), index: e.p.g.index}
	return res, gather("apply of "+e.p.Deployment, e.errs.ErrorOrNil())
}

func (e *executor) count(st State) int {
	n := 0
	for _, o := range e.outc {
		if o.State == st {
			n++
		}
	}
	return n
}

// journal queues rec, a record of node-role i, and returns its sequence
// number (journal.append). rec is passed by value: it costs no
// allocation.
func (e *executor) journal(i int32, rec record) uint64 {
	rec.slot = i + 1
	return e.j.append(rec)
}

func (e *executor) emit(i int32, ev Event) {
	if !e.em.on() {
		return
	}
	nr := e.p.g.nrs[i]
	ev.Deployment, ev.ID, ev.Role, ev.Node = e.p.Deployment, nr.id, nr.meta.Name, nr.name
	e.em.emit(ev)
}

// failed blocks what is below i (and, if the breaker trips, the rest of
// the rollout), journaling and announcing each.
func (e *executor) failed(i int32) {
	rs := e.s.fail(i)
	blocked := e.s.takeBlocked()
	g := e.p.g
	for _, k := range blocked {
		var by string
		why := e.s.why[k]
		if b := e.s.by[k]; b >= 0 {
			by = g.nrs[b].id
			msg := "blocked by " + by
			if err := e.outc[b].Err; err != nil {
				msg += ": " + err.Error()
			}
			if why != "" {
				msg = why + "; " + msg
			}
			why = msg
		}
		e.outc[k].State, e.outc[k].BlockedBy, e.outc[k].Why, e.outc[k].Reason = StateBlocked, by, ReasonBlocked, why
		e.journal(k, record{ID: g.nrs[k].id, State: StateBlocked, BlockedBy: by, Reason: why, At: time.Now(), Last: e.last[k]})
		e.emit(k, Event{State: StateBlocked, BlockedBy: by, Why: ReasonBlocked, Reason: why})
	}
	if rs != nil {
		// Counts are completed when Apply ends: in-flight node-roles of the
		// role may still fail.
		stopped := 0
		for _, k := range blocked {
			if e.s.by[k] < 0 {
				stopped++
			}
		}
		be := &BreakerError{Role: rs.name, Total: rs.total, MaxFailed: rs.policy.MaxFailed,
			MaxFailedFraction: rs.policy.MaxFailedFraction, NotStarted: stopped}
		e.trips = append(e.trips, trip{be, rs})
		e.errs = multierror.Append(e.errs, be)
	}
}

// estimates gives each node-role its last run's duration from the
// journal; unknown ones get the mean of their role's known durations, else
// the mean of all known ones, else 1.
func estimates(p *Plan) []int64 {
	n := len(p.Steps)
	est := make([]int64, n)
	sum := map[string][2]int64{}
	var all [2]int64
	for i, r := range p.recs {
		if r != nil && r.Last != nil && r.Last.Duration > 0 {
			est[i] = int64(r.Last.Duration)
			s := sum[p.Steps[i].Role]
			sum[p.Steps[i].Role] = [2]int64{s[0] + est[i], s[1] + 1}
			all[0] += est[i]
			all[1]++
		}
	}
	for i := range est {
		if est[i] > 0 {
			continue
		}
		switch s := sum[p.Steps[i].Role]; {
		case s[1] > 0:
			est[i] = s[0] / s[1]
		case all[1] > 0:
			est[i] = all[0] / all[1]
		default:
			est[i] = 1
		}
	}
	return est
}
