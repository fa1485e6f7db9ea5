package graph

import "fmt"

// stage is when decide is asked about a node-role.
type stage uint8

const (
	// stagePlan: NewPlan, from the journal record read for the plan.
	stagePlan stage = iota + 1
	// stageChecked: NewPlan, after the drift check of a node-role the
	// plan found converged.
	stageChecked
	// stageUpstreamRuns: NewPlan, when something a skipped node-role
	// waits for turned out to run after all (its check found drift).
	stageUpstreamRuns
	// stageClaimed: Apply with a Controller, once the node-role is
	// claimed and its journal record read again: another controller may
	// have run it since the plan.
	stageClaimed
	// stageInputsKnown: Apply, for a run-if-changed node-role once what
	// it waits for has run and its inputs are bound.
	stageInputsKnown
)

// actionFail is decide's verdict for a failure adopted from another
// controller's journal record; it never appears in a plan.
const actionFail Action = 100

// facts is what decide looks at for one node-role.
type facts struct {
	stage  stage
	g      *dag
	keys   *sealer // keys the digests of secret inputs (stagePlan)
	nr     *nodeRole
	forced bool
	// rec is the journal record: read for the plan (stagePlan), or read
	// again after claiming (stageClaimed); planned is the record the plan
	// was made from (stageClaimed).
	rec, planned *record
	// last is the last success the executor knows (stageInputsKnown).
	last *success
	// in is the bound input (stagePlan), when the plan could bind it; it
	// is only known when waitsFor, what it waits for that will run (as
	// the reason names it), is "".
	in       any
	waitsFor string
	// digest and fields fingerprint the bound input, when the caller has
	// them already (stageClaimed, stageInputsKnown); otherwise decide
	// computes them from in, only if it needs them.
	digest string
	fields fieldDigests
	// shared are the digests of the input's shared aggregates, by field
	// (stagePlan).
	shared map[string]string
	// prev is the plan's verdict so far, and drift and checkErr what the
	// node-role's check said (stageChecked).
	prev     verdict
	drift    string
	checkErr error
}

// verdict is what decide decided.
type verdict struct {
	// action is ActionRun, ActionSkip, ActionRunIfChanged, ActionHold or
	// actionFail; 0 means nothing is decided at this stage (stageClaimed:
	// the node-role is this controller's to run, as the inputs say).
	action Action
	why    reason
	out    any   // the journaled output, for skips
	err    error // an input that cannot be digested; the adopted failure
}

// decide is the one place that decides whether a node-role runs, and why:
// NewPlan asks it for every node-role, the executor asks it again for a
// run-if-changed node-role once its inputs are known, and a Controller
// asks it after claiming a node-role another controller may have run. The
// rules:
//
//   - forced runs; a destructive role interrupted mid-run is held;
//   - a node-role that never succeeded runs (interrupted, last run failed,
//     or new);
//   - one that succeeded runs again when it was interrupted or failed
//     since, when its role's version changed, when the producers of an
//     All input changed, or when its input digest changed — unless it is
//     destructive (never re-run without force) — and is converged
//     otherwise; inputs known only after something upstream runs are
//     decided then (run-if-changed);
//   - a converged node-role whose check finds drift runs; one whose
//     upstream runs after all waits for its inputs;
//   - after claiming, another controller's success with the same inputs,
//     its failure, or its interrupted destructive run are adopted.
func decide(f *facts) verdict {
	nr := f.nr
	switch f.stage {
	case stageChecked:
		switch {
		case f.checkErr != nil:
			return run(reason{kind: ReasonCheckFailed, text: f.checkErr.Error()})
		case f.drift != "":
			return run(reason{kind: ReasonDrifted, text: f.drift})
		}
		return f.prev
	case stageUpstreamRuns:
		return verdict{action: ActionRunIfChanged, why: reason{kind: ReasonInputsAfterRun, text: f.waitsFor}}
	case stageClaimed:
		return f.claimed()
	case stageInputsKnown:
		last := f.last
		if last == nil {
			return run(reason{kind: ReasonNew})
		}
		var why reason
		if f.digest != last.Digest {
			why = reason{kind: ReasonInputChanged, changed: changedFields(f.fields, last.Fields)}
		}
		return f.settle(last, why)
	}

	rec := f.rec
	var last *success
	if rec != nil {
		last = rec.Last
	}
	switch {
	case f.forced:
		return run(reason{kind: ReasonForced})
	case rec != nil && interrupted(rec.State) && nr.meta.Destructive:
		return verdict{action: ActionHold, why: reason{kind: ReasonHeldDestructive, attempt: rec.Attempt, node: nr.name}}
	case last == nil && rec != nil && interrupted(rec.State):
		return run(reason{kind: ReasonInterrupted})
	case last == nil && rec != nil && rec.State == StateFailed:
		return run(reason{kind: ReasonLastFailed, text: rec.Error})
	case last == nil:
		return run(reason{kind: ReasonNew})
	}
	// It succeeded before. Why would it run again?
	var why reason
	switch {
	case interrupted(rec.State):
		why = reason{kind: ReasonInterrupted}
	case rec.State == StateFailed:
		why = reason{kind: ReasonLastFailed, text: rec.Error}
	case last.Version != nr.meta.Version:
		why = reason{kind: ReasonVersionChanged, from: last.Version, to: nr.meta.Version}
	default:
		if changed, text := peersChanged(f.g, nr, last); text != "" {
			why = reason{kind: ReasonInputChanged, changed: changed, text: text}
		}
	}
	if why.kind == 0 {
		if f.waitsFor != "" {
			return verdict{action: ActionRunIfChanged, why: reason{kind: ReasonInputsAfterRun, text: f.waitsFor}}
		}
		dg, fields, err := f.keys.digestInputs(nr, f.in, f.shared, nil)
		if err != nil {
			return verdict{err: fmt.Errorf("graph: %s: %w", nr.id, err)}
		}
		if dg != last.Digest {
			why = reason{kind: ReasonInputChanged, changed: changedFields(fields, last.Fields)}
		}
	}
	return f.settle(last, why)
}

// settle decides for a node-role that succeeded before (last): it runs
// for why, unless it is destructive; it is skipped when nothing changed;
// either way a skip needs its journaled output.
func (f *facts) settle(last *success, why reason) verdict {
	if why.kind != 0 && !f.nr.meta.Destructive && !f.nr.meta.Once {
		return run(why)
	}
	out, err := f.g.dec.decode(last.Output, f.nr.def.Out())
	if err != nil {
		return run(reason{kind: ReasonOutputUnreadable, text: err.Error()})
	}
	if why.kind != 0 {
		// Changes alone never re-run a destructive or Once role.
		because := why
		return verdict{action: ActionSkip, why: reason{kind: ReasonDestructiveDone, because: &because, once: !f.nr.meta.Destructive}, out: out}
	}
	return verdict{action: ActionSkip, why: reason{kind: ReasonConverged, afterUpstream: f.stage == stageInputsKnown}, out: out}
}

// claimed decides after claiming: whatever another controller journaled
// since the plan (f.rec differs from f.planned) is adopted when it
// settles the node-role; otherwise nothing is decided here.
func (f *facts) claimed() verdict {
	rec, nr := f.rec, f.nr
	if rec == nil || (f.planned != nil && sameRecord(f.planned, rec)) {
		return verdict{}
	}
	switch {
	case rec.State == StateSucceeded && rec.Last != nil && rec.Last.Digest == f.digest && rec.Last.Version == nr.meta.Version:
		out, err := f.g.dec.decode(rec.Last.Output, nr.def.Out())
		if err != nil {
			return verdict{} // run it here
		}
		return verdict{action: ActionSkip, why: reason{kind: ReasonRanElsewhere}, out: out}
	case rec.State == StateFailed:
		return verdict{action: actionFail, why: reason{kind: ReasonFailedElsewhere},
			err: fmt.Errorf("failed in another controller since the plan: %s", rec.Error)}
	case interrupted(rec.State) && nr.meta.Destructive:
		return verdict{action: ActionHold, why: reason{kind: ReasonHeldDestructive, attempt: rec.Attempt, at: rec.At, elsewhere: true}}
	}
	return verdict{}
}

func run(why reason) verdict { return verdict{action: ActionRun, why: why} }

// interrupted reports whether a journaled state means the process died
// while the node-role was running or waiting to retry.
func interrupted(s State) bool { return s == StateRunning || s == StateRetrying }

// sameRecord reports whether b is still the record a was read as.
func sameRecord(a, b *record) bool {
	return a.State == b.State && a.Attempt == b.Attempt && a.At.Equal(b.At)
}

// peersChanged compares the producers of every All input with the ones
// recorded at the last successful run (aggregate.go: once per aggregate).
func peersChanged(g *dag, nr *nodeRole, last *success) ([]string, string) {
	return g.peersChanged(nr, last)
}
