package graph

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/role"
)

// workerMem is what a worker keeps from one node-role to the next.
type workerMem struct {
	outs []role.Output  // scratch for binding
	succ []success      // handed out one at a time, allocated in blocks
	ctxs []role.Context // likewise: each run its own (role.InitContext)
	digs []string       // digests of input fields, handed out in slices
	enc  []byte         // encoded outputs, likewise (outputCodecs.encodeIn)
}

// success returns a zero success, from a block of them.
func (wm *workerMem) success() *success { return &cut(&wm.succ, 1, 32)[0] }

// context returns a Context no run has used, from a block of them.
func (wm *workerMem) context() *role.Context { return &cut(&wm.ctxs, 1, 32)[0] }

// digests returns a slice of n strings for a node-role's field digests,
// cut from a block shared with other node-roles' digests.
func (wm *workerMem) digests(n int) []string { return cut(&wm.digs, n, 256) }

// work runs node-role i in a worker: binds its inputs, decides (for a
// run-if-changed node-role, or after a Controller claims it) whether it
// must run, runs it with retries and journals the outcome.
func (e *executor) work(i int32, wm *workerMem) (r runResult) {
	r = runResult{i: i}
	in, dg, fields, ok := e.ready(i, wm, &r)
	if !ok {
		return
	}
	reason := r.reason
	r.succ, r.rc = wm.success(), wm.context()
	out, err := e.runRetrying(i, in, reason, &r)
	if err != nil {
		r.err = err
		e.journal(i, record{ID: e.p.g.nrs[i].id, State: StateFailed, Attempt: r.attempts, Error: err.Error(), Reason: reason, At: time.Now(), Duration: r.dur, Last: e.last[i]})
		return
	}
	e.succeeded(i, out, dg, fields, reason, &r, &wm.enc)
	return
}

// ready binds node-role i's input and fingerprints it, and decides whether
// it still runs: false when r already says what became of it (it failed
// to bind, another controller ran it, its inputs did not change). r.reason
// and r.why are then why it runs.
func (e *executor) ready(i int32, wm *workerMem, r *runResult) (in any, dg string, fields fieldDigests, ok bool) {
	p, nr := e.p, e.p.g.nrs[i]
	step := &p.Steps[i]
	in, shared, err := p.bind(int(i), e.outOf, e.aggs, true, &wm.outs, false)
	if err == nil {
		if dg, fields, err = p.seal.digestInputs(nr, in, shared, wm.digests(len(nr.def.DigestedInputs()))); err != nil {
			err = fmt.Errorf("graph: %s: %w", nr.id, err)
		}
	}
	if err != nil {
		r.err = err
		e.journal(i, record{ID: nr.id, State: StateFailed, Error: err.Error(), At: time.Now(), Last: e.last[i]})
		return nil, "", fieldDigests{}, false
	}
	if e.o.ctl != nil && e.o.ctl.acquire(e, i, dg, r) {
		return nil, "", fieldDigests{}, false // another controller ran it, or it could not be claimed
	}
	r.reason, r.why = step.Reason, step.Why
	if step.Action == ActionRunIfChanged {
		last := e.last[i]
		v := decide(&facts{stage: stageInputsKnown, g: p.g, nr: nr, last: last, digest: dg, fields: fields})
		r.reason, r.why = v.why.String(), v.why.kind
		if v.action == ActionSkip {
			r.skipped, r.out = true, v.out
			e.journal(i, record{ID: nr.id, State: StateSkipped, Reason: r.reason, At: time.Now(), Last: last})
			return nil, "", fieldDigests{}, false
		}
	}
	return in, dg, fields, true
}

// runRetrying runs node-role i with in, retrying as its role's policy says
// (backoff.Permanent errors stop at once). It records the attempts and
// the time taken in r.
func (e *executor) runRetrying(i int32, in any, reason string, r *runResult) (any, error) {
	nr := e.p.g.nrs[i]
	last := e.last[i]
	started := time.Now()
	r.started = started
	var out any
	var err error
	if nr.meta.Retry.MaxAttempts > 1 {
		op := func() (any, error) { return e.attempt(i, in, reason, last, r) }
		notify := func(err error, wait time.Duration) {
			e.emit(i, Event{State: StateRetrying, Attempt: r.attempts, Err: err, Why: r.why, Reason: fmt.Sprintf("attempt %d failed; next in %v", r.attempts, wait.Round(time.Millisecond))})
		}
		out, err = backoff.RetryNotifyWithData(op, retryPolicy(e.ctx, nr.meta.Retry), notify)
	} else {
		out, err = e.attempt(i, in, reason, last, r)
		if err != nil {
			var perm *backoff.PermanentError
			if errors.As(err, &perm) {
				err = perm.Err
			}
		}
	}
	r.ended = time.Now()
	r.dur = r.ended.Sub(started)
	if err != nil && r.lastErr != nil && !errors.Is(r.lastErr, err) && errors.Is(err, e.ctx.Err()) {
		err = fmt.Errorf("%w (retries stopped: %v)", r.lastErr, err)
	}
	return out, err
}

// succeeded journals node-role i's success: its output, and the digest
// and peers a later plan compares with.
func (e *executor) succeeded(i int32, out any, dg string, fields fieldDigests, reason string, r *runResult, slab *[]byte) {
	nr := e.p.g.nrs[i]
	enc, err := e.codecs.encodeIn(out, slab)
	if err != nil {
		r.err = fmt.Errorf("graph: %s: %w", nr.id, err)
		e.journal(i, record{ID: nr.id, State: StateFailed, Attempt: r.attempts, Error: r.err.Error(), At: time.Now(), Duration: r.dur, Last: e.last[i]})
		return
	}
	succ := r.succ
	*succ = success{Version: nr.meta.Version, Digest: dg, Fields: fields, Output: enc, Duration: r.dur, At: r.ended}
	if len(nr.peers) > 0 {
		succ.Peers = make(map[string][]string, len(nr.peers))
		for _, pi := range nr.peers {
			succ.Peers[pi.field] = e.p.g.aggs[pi.agg].refs // the peer set, journaled once (aggregate.go)
		}
	}
	r.out, r.last = out, succ
	r.seq = e.journal(i, record{ID: nr.id, State: StateSucceeded, Attempt: r.attempts, Reason: reason, At: succ.At, Duration: r.dur, Last: succ})
}

// attempt runs node-role i once, journaling the attempt.
func (e *executor) attempt(i int32, in any, reason string, last *success, r *runResult) (any, error) {
	p, nr := e.p, e.p.g.nrs[i]
	r.attempts++
	at := r.started // one clock reading for the run's start and its first attempt's
	if r.attempts > 1 {
		at = time.Now()
	}
	seq := e.journal(i, record{ID: nr.id, State: StateRunning, Attempt: r.attempts, Reason: reason, At: at, Last: last})
	if nr.meta.Destructive {
		// A destructive role must never run without the journal knowing,
		// or a crash would let it run again unforced.
		if err := e.waitDurable(seq); err != nil {
			return nil, backoff.Permanent(err)
		}
	}
	if r.attempts > 1 || p.Steps[i].Action == ActionRunIfChanged {
		e.emit(i, Event{State: StateRunning, Attempt: r.attempts, Why: r.why, Reason: reason})
	}
	opts := role.ContextOptions{Deployment: p.Deployment, Role: nr.meta.Name, Node: nr.node,
		Logger: e.logger, Services: e.services, Attempt: r.attempts}
	if e.em.on() {
		opts.Progress = e.progressOf(i, r.attempts, r.why)
	}
	var rc *role.Context
	if r.attempts == 1 {
		rc = role.InitContext(r.rc, opts) // the first attempt's, from the worker's block
	} else {
		rc = role.NewContext(opts)
	}
	out, err := nr.def.Run(e.runCtx, rc, in)
	if err != nil {
		r.lastErr = err
		var perm *backoff.PermanentError
		if !errors.As(err, &perm) {
			e.journal(i, record{ID: nr.id, State: StateRetrying, Attempt: r.attempts, Error: err.Error(), At: time.Now(), Duration: time.Since(at), Last: last})
		}
	}
	return out, err
}

// waitDurable waits until the journal has persisted sequence number seq.
func (e *executor) waitDurable(seq uint64) error {
	for e.j.durable() < seq {
		if err := e.j.err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// retryPolicy turns a role's Retry into a backoff policy.
func retryPolicy(ctx context.Context, r role.Retry) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	if r.Initial > 0 {
		b.InitialInterval = r.Initial
	}
	b.MaxInterval = 30 * time.Second
	if r.Max > 0 {
		b.MaxInterval = r.Max
	}
	b.MaxElapsedTime = r.MaxElapsed // 0: no limit
	b.Reset()
	retries := 0
	if r.MaxAttempts > 1 {
		retries = r.MaxAttempts - 1
	}
	return backoff.WithContext(backoff.WithMaxRetries(b, uint64(retries)), ctx)
}
