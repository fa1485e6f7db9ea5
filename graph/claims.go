package graph

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/claim"
)

// Controller makes [Apply] safe to run in several processes at once on
// one deployment through one shared store (store/etcd in practice). Set
// it in [Options].
//
// Each Apply then holds a claim session (a store lease renewed every
// TTL/3) and claims every node-role under it before running it, so no
// node-role runs in two controllers at once. A node-role another
// controller holds is set aside while this controller runs other ready
// ones, so controllers share the work; when its claim is released, it is
// claimed here and its journal record read again: its output is adopted
// if it succeeded with the same inputs (the Outcome is StateSkipped, "run
// by another controller"), its failure adopted if it failed, and
// otherwise (its controller died mid-run) it runs here. Every journal record is written in
// a transaction fenced by its claim, and the final record releases the
// claim in the same transaction, so a controller that lost its claim
// cannot overwrite the new owner's record. Records of node-roles the
// controller does not hold (pending, skipped and blocked ones) are not
// journaled: they would overwrite what another controller wrote.
//
// When a controller dies, its lease expires after TTL and the others take
// its node-roles over. When a controller's own lease may have expired (it
// could not renew it for TTL), its Apply stops: running roles' contexts
// are cancelled at once, nothing more is journaled, and the error wraps
// claim.ErrLost. Apply again with a new plan to go on.
type Controller struct {
	// Name identifies this controller in the store's claim keys and in
	// errors, e.g. "ctl-a pid 4711". Required; it should be unique.
	Name string
	// TTL is the claim lease: how long a dead controller's node-roles
	// wait before another controller takes them over. 0 means 3s. On
	// etcd it is counted in whole seconds, and at least etcd's minimum
	// (1.5 election timeouts; 2s with default flags).
	TTL time.Duration
}

// ClaimPrefix is where the claims of deployment's node-roles live in the
// store: one key per claimed node-role, its value the controller's name.
func ClaimPrefix(deployment string) string { return "mason/graph/" + deployment + "/claims/" }

// controlled is one Apply's side of a Controller.
type controlled struct {
	sess  *claim.Session
	st    store.Store
	jpfx  string
	lost  context.Context // cancelled when the session is lost
	runCx context.Context // Apply's context, for waits

	// Node-roles another controller holds are parked: a watcher waits for
	// the claim's release and sends the node-role on freed, and the
	// executor schedules it again. Meanwhile its worker takes other work,
	// so controllers share a deployment's work instead of queueing behind
	// each other.
	freed   chan int32
	parked  int // under the executor's mu
	stop    chan struct{}
	waiters sync.WaitGroup
}

// freedC returns the channel parked node-roles come back on; nil (never
// ready) without a Controller.
func (c *controlled) freedC() <-chan int32 {
	if c == nil {
		return nil
	}
	return c.freed
}

// parkedN returns how many node-roles wait for another controller.
func (c *controlled) parkedN() int {
	if c == nil {
		return 0
	}
	return c.parked
}

// park takes node-role i, which another controller holds, back from
// running to pending, and waits for its claim's release in the
// background. Called with the executor's mu held.
func (c *controlled) park(s *sched, i int32, id string) {
	s.state[i] = StatePending
	c.parked++
	c.waiters.Add(1)
	go func() {
		defer c.waiters.Done()
		// On an error (Apply stopping), send it anyway: the executor is
		// not starting work then, and a worker would report the error.
		_ = c.sess.WaitFree(c.runCx, id)
		select {
		case c.freed <- i:
		case <-c.stop:
		}
	}()
}

// unpark schedules a parked node-role again.
func (c *controlled) unpark(s *sched, i int32) {
	c.parked--
	s.push(i)
}

// close stops the waiters of node-roles still parked.
func (c *controlled) close() {
	close(c.stop)
	c.waiters.Wait()
}

// applyControlled is Apply with o.Controller set: it opens a claim
// session for the Apply, runs it with a fenced journal, and closes the
// session (freeing any claim left) when it returns.
func applyControlled(ctx context.Context, p *Plan, o Options) (*Result, error) {
	c := o.Controller
	if c.Name == "" {
		return nil, fmt.Errorf("graph: apply of %s: Options.Controller.Name is empty; name the controller (host and pid)", p.Deployment)
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = 3 * time.Second
	}
	sess, err := claim.NewSession(ctx, p.st, claim.Options{Prefix: ClaimPrefix(p.Deployment), Owner: c.Name, TTL: ttl})
	if err != nil {
		return nil, fmt.Errorf("graph: apply of %s as controller %q: %w", p.Deployment, c.Name, err)
	}
	lost, stopLost := context.WithCancel(context.Background())
	actx, cancel := context.WithCancelCause(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-sess.Lost():
			stopLost()
			cancel(fmt.Errorf("graph: controller %q: %w (its lease may have expired)", c.Name, claim.ErrLost))
		case <-actx.Done():
		}
	}()
	ctl := &controlled{sess: sess, st: p.st, jpfx: journalPrefix(p.Deployment), lost: lost, runCx: actx,
		freed: make(chan int32), stop: make(chan struct{})}
	o.ctl = ctl
	j := p.newJournal()
	j.claims = sess
	j.start()
	res, err := apply(actx, p, o, j)

	wasLost := lost.Err() != nil
	cancel(nil)
	<-watchDone
	ctl.close()
	stopLost()
	if cerr := sess.Close(context.WithoutCancel(ctx)); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if wasLost {
		err = errors.Join(err, fmt.Errorf("graph: apply of %s as controller %q stopped: %w; make a new plan and apply again", p.Deployment, c.Name, claim.ErrLost))
	}
	return res, err
}

// acquire claims node-role i before it runs. It returns false when the
// claim is held and the node-role must run here (e.last[i] is then the
// journal's latest), and true when r is filled in instead: another
// controller holds it (r.held: park it), the output or failure of another
// controller's run, or why claiming failed.
func (c *controlled) acquire(e *executor, i int32, dg string, r *runResult) bool {
	nr := e.p.g.nrs[i]
	cl, err := c.sess.Claim(c.runCx, nr.id)
	if errors.Is(err, store.ErrConflict) || (err != nil && c.runCx.Err() != nil) {
		// Another controller runs it (or Apply is stopping): park it, and
		// let the worker take other work.
		r.held = true
		return true
	}
	if err != nil {
		r.err = fmt.Errorf("graph: %s: claiming it: %w", nr.id, err)
		return true
	}
	// Someone may have finished it since the plan was made.
	ent, err := c.st.Get(c.runCx, c.jpfx+nr.id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	var rec record
	if err == nil {
		err = e.p.seal.read(&rec, c.jpfx+nr.id, ent.Value)
	}
	if err != nil {
		_ = cl.Release(context.WithoutCancel(c.runCx))
		r.err = fmt.Errorf("graph: %s: reading its journal record after claiming it: %w", nr.id, err)
		return true
	}
	v := decide(&facts{stage: stageClaimed, g: e.p.g, nr: nr, rec: &rec, planned: e.p.recs[i], digest: dg})
	if v.action == 0 {
		if planned := e.p.recs[i]; planned == nil || !sameRecord(planned, &rec) {
			e.last[i] = rec.Last // run here, against what the other controller left
		}
		return false
	}
	_ = cl.Release(context.WithoutCancel(c.runCx))
	r.reason, r.why = v.why.String(), v.why.kind
	switch v.action {
	case ActionSkip:
		e.last[i] = rec.Last
		r.skipped, r.out = true, v.out
	case ActionHold:
		r.err = fmt.Errorf("held: %s", r.reason)
	default: // actionFail
		r.err = v.err
	}
	return true
}
