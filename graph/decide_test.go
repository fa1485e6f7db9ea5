package graph

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/role"
)

type decideIn struct {
	Token string `attr:"x.token"`
}

type decideOut struct{ V string }

// TestDecide walks decide through every rule: the action and the reason's
// kind are what callers branch on, the prose is what people read.
func TestDecide(t *testing.T) {
	def := role.Of(role.Func(role.Meta{Name: "r", Version: "2"}, func(ctx context.Context, rc *role.Context, in decideIn) (decideOut, error) {
		return decideOut{}, nil
	}))
	require.NoError(t, def.Err())
	in := decideIn{Token: "t"}
	dg, fm, err := def.DigestInputs(in)
	require.NoError(t, err)
	fields := fieldsOf(fm)
	var codecs outputCodecs
	enc, err := codecs.encode(decideOut{V: "old"})
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ok := &success{Version: "2", Digest: dg, Fields: fields, Output: enc}
	stale := &success{Version: "2", Digest: "other", Fields: fieldsOf(map[string]string{"Token": "other"}), Output: enc}
	oldVersion := &success{Version: "1", Digest: dg, Fields: fields, Output: enc}
	unreadable := &success{Version: "2", Digest: dg, Fields: fields, Output: []byte("\x00not gob")}
	rec := func(st State, last *success) *record {
		return &record{ID: "r@n1", State: st, Attempt: 2, Error: "boom", At: at, Last: last}
	}

	tests := []struct {
		name        string
		f           facts
		destructive bool
		action      Action
		kind        ReasonKind
		prose       string
	}{
		{"new", facts{stage: stagePlan, in: in}, false, ActionRun, ReasonNew, "new"},
		{"forced beats converged", facts{stage: stagePlan, rec: rec(StateSucceeded, ok), in: in, forced: true}, false, ActionRun, ReasonForced, "forced"},
		{"forced beats a hold", facts{stage: stagePlan, rec: rec(StateRunning, ok), in: in, forced: true}, true, ActionRun, ReasonForced, "forced"},
		{"held", facts{stage: stagePlan, rec: rec(StateRunning, ok), in: in}, true, ActionHold, ReasonHeldDestructive,
			"destructive role was interrupted while running (attempt 2); inspect node n1 and force it to run again"},
		{"interrupted before any success", facts{stage: stagePlan, rec: rec(StateRetrying, nil), in: in}, false, ActionRun, ReasonInterrupted, "interrupted while running; runs again"},
		{"interrupted after a success", facts{stage: stagePlan, rec: rec(StateRunning, ok), in: in}, false, ActionRun, ReasonInterrupted, "interrupted while running; runs again"},
		{"failed before any success", facts{stage: stagePlan, rec: rec(StateFailed, nil), in: in}, false, ActionRun, ReasonLastFailed, "last run failed: boom"},
		{"failed after a success", facts{stage: stagePlan, rec: rec(StateFailed, ok), in: in}, false, ActionRun, ReasonLastFailed, "last run failed: boom"},
		{"version changed", facts{stage: stagePlan, rec: rec(StateSucceeded, oldVersion), in: in}, false, ActionRun, ReasonVersionChanged, "role version changed: 1 → 2"},
		{"input changed", facts{stage: stagePlan, rec: rec(StateSucceeded, stale), in: in}, false, ActionRun, ReasonInputChanged, "input Token changed"},
		{"converged", facts{stage: stagePlan, rec: rec(StateSucceeded, ok), in: in}, false, ActionSkip, ReasonConverged, "converged"},
		{"inputs known after run", facts{stage: stagePlan, rec: rec(StateSucceeded, ok), in: in, waitsFor: "a@n1"}, false, ActionRunIfChanged, ReasonInputsAfterRun, "inputs known after run (waits for a@n1)"},
		{"version known before inputs", facts{stage: stagePlan, rec: rec(StateSucceeded, oldVersion), waitsFor: "a@n1"}, false, ActionRun, ReasonVersionChanged, "role version changed: 1 → 2"},
		{"destructive not re-run", facts{stage: stagePlan, rec: rec(StateSucceeded, stale), in: in}, true, ActionSkip, ReasonDestructiveDone,
			"destructive role already succeeded; not re-run although input Token changed; force it to run again"},
		{"output unreadable", facts{stage: stagePlan, rec: rec(StateSucceeded, unreadable), in: in}, false, ActionRun, ReasonOutputUnreadable,
			"journaled output unreadable (decoding journaled output as graph.decideOut: unexpected EOF)"},
		{"drifted", facts{stage: stageChecked, prev: verdict{action: ActionSkip}, drift: "gone"}, false, ActionRun, ReasonDrifted, "drifted: gone"},
		{"check failed", facts{stage: stageChecked, prev: verdict{action: ActionSkip}, checkErr: errors.New("no ssh")}, false, ActionRun, ReasonCheckFailed, "check failed: no ssh"},
		{"check found nothing", facts{stage: stageChecked, prev: verdict{action: ActionSkip, why: reason{kind: ReasonConverged}}}, false, ActionSkip, ReasonConverged, "converged"},
		{"upstream runs", facts{stage: stageUpstreamRuns, waitsFor: "svc@n1"}, false, ActionRunIfChanged, ReasonInputsAfterRun, "inputs known after run (waits for svc@n1)"},
		{"unchanged after upstream", facts{stage: stageInputsKnown, last: ok, digest: dg, fields: fields}, false, ActionSkip, ReasonConverged, "converged: inputs unchanged after upstream ran"},
		{"changed after upstream", facts{stage: stageInputsKnown, last: stale, digest: dg, fields: fields}, false, ActionRun, ReasonInputChanged, "input Token changed"},
		{"destructive changed after upstream", facts{stage: stageInputsKnown, last: stale, digest: dg, fields: fields}, true, ActionSkip, ReasonDestructiveDone,
			"destructive role already succeeded; not re-run although input Token changed; force it to run again"},
		{"claimed: unchanged record", facts{stage: stageClaimed, rec: rec(StateSucceeded, ok), planned: rec(StateSucceeded, ok), digest: dg}, false, 0, 0, ""},
		{"claimed: ran elsewhere", facts{stage: stageClaimed, rec: rec(StateSucceeded, ok), digest: dg}, false, ActionSkip, ReasonRanElsewhere, "run by another controller since the plan"},
		{"claimed: ran elsewhere on other inputs", facts{stage: stageClaimed, rec: rec(StateSucceeded, stale), digest: dg}, false, 0, 0, ""},
		{"claimed: failed elsewhere", facts{stage: stageClaimed, rec: rec(StateFailed, nil), digest: dg}, false, actionFail, ReasonFailedElsewhere, "failed in another controller since the plan"},
		{"claimed: held elsewhere", facts{stage: stageClaimed, rec: rec(StateRunning, nil), digest: dg}, true, ActionHold, ReasonHeldDestructive,
			"destructive role was interrupted in another controller (attempt 2 at 2026-12-01T10:00:00Z); force it to run again"},
		{"claimed: dead controller's run", facts{stage: stageClaimed, rec: rec(StateRunning, nil), digest: dg}, false, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			meta := def.Meta()
			meta.Destructive = tc.destructive
			tc.f.nr = &nodeRole{id: "r@n1", def: def, meta: &roleMeta{Meta: meta}, name: "n1"}
			tc.f.g = &dag{}
			v := decide(&tc.f)
			if tc.action == actionFail {
				require.EqualError(t, v.err, "failed in another controller since the plan: boom")
			} else {
				require.NoError(t, v.err)
			}
			require.Equal(t, tc.action, v.action)
			require.Equal(t, tc.kind, v.why.kind)
			if tc.kind != 0 {
				require.Equal(t, tc.prose, v.why.String())
			}
			require.Equal(t, tc.action == ActionRun, tc.kind.Runs(), "ReasonKind.Runs agrees with the action")
			if v.action == ActionSkip && tc.f.stage != stageChecked {
				require.Equal(t, decideOut{V: "old"}, v.out, "a skip carries the journaled output")
			}
		})
	}
}
