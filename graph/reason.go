package graph

import (
	"fmt"
	"strings"
	"time"
)

// ReasonKind says why a node-role runs, is skipped, waits or is held: the
// kind of a plan step's reason ([Step.Why]) and of what became of it in an
// Apply ([Outcome.Why], [Event.Why]). Branch on the kind; the Reason
// strings beside it are rendered from it for people.
type ReasonKind uint8

// Reason kinds. The text after each is how the reason reads.
const (
	// ReasonNew: the node-role never ran ("new").
	ReasonNew ReasonKind = iota + 1
	// ReasonInputChanged: an input's value changed since its last
	// successful run ("input Token changed"), or the producers of an All
	// input did ("input Peers changed: +n4"). Step.Changed lists the
	// fields when they are known.
	ReasonInputChanged
	// ReasonVersionChanged: the role's version changed ("role version
	// changed: 3.4 → 3.5").
	ReasonVersionChanged
	// ReasonLastFailed: its last run failed ("last run failed: ...").
	ReasonLastFailed
	// ReasonInterrupted: the journal says it was running when its
	// controller stopped ("interrupted while running; runs again").
	ReasonInterrupted
	// ReasonDrifted: the role's Check found drift ("drifted: etcd is not
	// running").
	ReasonDrifted
	// ReasonCheckFailed: the role's Check returned an error; it runs to
	// be sure ("check failed: ...").
	ReasonCheckFailed
	// ReasonForced: Force or ForceAll asked for it ("forced").
	ReasonForced
	// ReasonOutputUnreadable: its journaled output cannot be decoded (its
	// output type changed), so it runs to produce one ("journaled output
	// unreadable (...)").
	ReasonOutputUnreadable
	// ReasonConverged: same role version, same inputs, last run succeeded
	// ("converged"), also when its inputs turned out unchanged once what
	// it waits for had run ("converged: inputs unchanged after upstream
	// ran").
	ReasonConverged
	// ReasonDestructiveDone: a destructive (or Once) role that already
	// succeeded is not run again, whatever changed ("destructive role already
	// succeeded; not re-run although input X changed; force it to run
	// again").
	ReasonDestructiveDone
	// ReasonHeldDestructive: a destructive role was interrupted mid-run;
	// it is held until forced, and what waits for it is blocked
	// ("destructive role was interrupted while running (attempt 2);
	// inspect node n1 and force it to run again").
	ReasonHeldDestructive
	// ReasonInputsAfterRun: its inputs are known only once something it
	// waits for has run; it runs then only if they changed ("inputs known
	// after run (waits for a@n1)").
	ReasonInputsAfterRun
	// ReasonRanElsewhere: another controller ran it with the same inputs
	// since the plan was made; its output is adopted ("run by another
	// controller since the plan").
	ReasonRanElsewhere
	// ReasonFailedElsewhere: it failed in another controller since the
	// plan was made; the failure is adopted ("failed in another
	// controller since the plan").
	ReasonFailedElsewhere
	// ReasonBlocked: not started, because something it waits for failed,
	// a breaker tripped or an earlier batch did not pass ("blocked by
	// a@n1: ...").
	ReasonBlocked
)

var reasonKindNames = [...]string{"", "new", "input-changed", "version-changed", "last-run-failed", "interrupted",
	"drifted", "check-failed", "forced", "output-unreadable", "converged", "destructive-done", "held-destructive",
	"inputs-after-run", "ran-elsewhere", "failed-elsewhere", "blocked"}

// String returns the kind's name ("input-changed").
func (k ReasonKind) String() string {
	if k > 0 && int(k) < len(reasonKindNames) {
		return reasonKindNames[k]
	}
	return fmt.Sprintf("ReasonKind(%d)", int(k))
}

// Runs reports whether a node-role with a reason of this kind runs.
func (k ReasonKind) Runs() bool {
	switch k {
	case ReasonNew, ReasonInputChanged, ReasonVersionChanged, ReasonLastFailed, ReasonInterrupted,
		ReasonDrifted, ReasonCheckFailed, ReasonForced, ReasonOutputUnreadable:
		return true
	}
	return false
}

// reason is a ReasonKind with the details its prose needs.
type reason struct {
	kind    ReasonKind
	changed []string // ReasonInputChanged: the fields, when known
	// text is the detail the kind's prose carries: the peers' changes
	// ("input Peers changed: +n4"), an error, a drift, the node-role
	// waited for.
	text     string
	from, to string // ReasonVersionChanged
	once     bool   // ReasonDestructiveDone: a Once role, not a destructive one
	attempt  int    // ReasonHeldDestructive
	node     string // ReasonHeldDestructive: where to look
	// elsewhere marks a hold found in another controller's record, at.
	elsewhere bool
	at        time.Time
	// afterUpstream marks ReasonConverged found by the executor, once
	// what the node-role waits for had run.
	afterUpstream bool
	// because is why a destructive role would have run
	// (ReasonDestructiveDone).
	because *reason
}

// String renders the reason's prose.
func (r reason) String() string {
	switch r.kind {
	case ReasonNew:
		return "new"
	case ReasonInputChanged:
		if r.text != "" {
			return r.text
		}
		return "input " + strings.Join(r.changed, ", ") + " changed"
	case ReasonVersionChanged:
		return fmt.Sprintf("role version changed: %s → %s", versionText(r.from), versionText(r.to))
	case ReasonLastFailed:
		return "last run failed: " + r.text
	case ReasonInterrupted:
		return "interrupted while running; runs again"
	case ReasonDrifted:
		return "drifted: " + r.text
	case ReasonCheckFailed:
		return "check failed: " + r.text
	case ReasonForced:
		return "forced"
	case ReasonOutputUnreadable:
		return "journaled output unreadable (" + r.text + ")"
	case ReasonConverged:
		if r.afterUpstream {
			return "converged: inputs unchanged after upstream ran"
		}
		return "converged"
	case ReasonDestructiveDone:
		because := "its inputs changed"
		if r.because != nil {
			because = r.because.String()
		}
		if r.once {
			return "runs once and already succeeded; not re-run although " + because + "; force it to run again"
		}
		return "destructive role already succeeded; not re-run although " + because + "; force it to run again"
	case ReasonHeldDestructive:
		if r.elsewhere {
			return fmt.Sprintf("destructive role was interrupted in another controller (attempt %d at %s); force it to run again", r.attempt, r.at.Format(time.RFC3339))
		}
		return fmt.Sprintf("destructive role was interrupted while running (attempt %d); inspect %s and force it to run again", r.attempt, orDeployment(r.node))
	case ReasonInputsAfterRun:
		return "inputs known after run (waits for " + r.text + ")"
	case ReasonRanElsewhere:
		return "run by another controller since the plan"
	case ReasonFailedElsewhere:
		return "failed in another controller since the plan"
	case ReasonBlocked:
		return r.text
	}
	return r.kind.String()
}

func versionText(v string) string {
	if v == "" {
		return `""`
	}
	return v
}
