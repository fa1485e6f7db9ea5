package graph

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/masonops/mason/internal/problems"
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
	// ReasonInputsAfterRun: its inputs are known only once what it waits
	// for has run; it runs then only if they changed ("inputs known after
	// run (waits for a@n1, a@n2)"). The reason names every node-role it
	// waits for that runs, and only those: for a role.Same input, the
	// producer on its own node.
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
	// ReasonNodeLeft: its node left the deployment; it is undone and
	// forgotten, the node deleted ("node web-4 left the deployment").
	ReasonNodeLeft
	// ReasonForcedRemoval: as ReasonNodeLeft, by ForceRemove: failed
	// undos do not stop it ("node web-4 left the deployment; removed by
	// force").
	ReasonForcedRemoval
)

var reasonKindNames = [...]string{"", "new", "input-changed", "version-changed", "last-run-failed", "interrupted",
	"drifted", "check-failed", "forced", "output-unreadable", "converged", "destructive-done", "held-destructive",
	"inputs-after-run", "ran-elsewhere", "failed-elsewhere", "blocked", "node-left", "forced-removal"}

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
		ReasonDrifted, ReasonCheckFailed, ReasonForced, ReasonOutputUnreadable, ReasonNodeLeft, ReasonForcedRemoval:
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
	case ReasonNodeLeft:
		return "node " + r.node + " left the deployment"
	case ReasonForcedRemoval:
		return "node " + r.node + " left the deployment; removed by force"
	}
	return r.kind.String()
}

func versionText(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// waitsFor renders what node-role nr waits for among the node-roles that
// will run (not skipped in the plan so far): every one of them, by role
// ("etcd-peer-url@n4, etcd-peer-url@n5"; "peer-url on n1 … n100 (100
// nodes)" for many), or "" when all it waits for is converged and its
// inputs are known now.
func (p *Plan) waitsFor(nr *nodeRole) string {
	return p.aggWaits.text(p, nr) // aggregate.go: with the producers of its All inputs, each aggregate looked at once
}

// nodeRolesText names node-roles for a sentence, grouped by role, roles
// in name order: "a@n1", "a@n1, a@n2, b", or, for more than three of one
// role, "a on n1 … n100 (100 nodes)".
func nodeRolesText(g *dag, is []int32) string {
	if len(is) == 1 {
		return g.nrs[is[0]].id
	}
	if len(is) <= 3 {
		// No role can have more than three: the IDs in role, then node,
		// order (what the groups below give), in one allocation.
		var small [3]*nodeRole
		nrs := small[:0]
		size := 0
		for _, i := range is {
			nrs = append(nrs, g.nrs[i])
			size += len(g.nrs[i].id) + 2
		}
		slices.SortFunc(nrs, func(a, b *nodeRole) int {
			if c := strings.Compare(a.meta.Name, b.meta.Name); c != 0 {
				return c
			}
			return problems.Compare(a.name, b.name)
		})
		var sb strings.Builder
		sb.Grow(size)
		for k, nr := range nrs {
			if k > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(nr.id)
		}
		return sb.String()
	}
	return groupedText(g, is)
}

// groupedText is nodeRolesText for any number of node-roles.
func groupedText(g *dag, is []int32) string {
	type group struct {
		role  string
		nodes []string
	}
	var groups []*group
	for _, i := range is {
		nr := g.nrs[i]
		var gr *group
		for _, x := range groups {
			if x.role == nr.meta.Name {
				gr = x
			}
		}
		if gr == nil {
			gr = &group{role: nr.meta.Name}
			groups = append(groups, gr)
		}
		gr.nodes = append(gr.nodes, nr.name)
	}
	slices.SortFunc(groups, func(a, b *group) int { return strings.Compare(a.role, b.role) })
	var parts []string
	for _, gr := range groups {
		slices.SortFunc(gr.nodes, problems.Compare)
		if len(gr.nodes) > 3 {
			parts = append(parts, gr.role+" on "+problems.Nodes(gr.nodes))
			continue
		}
		for _, n := range gr.nodes {
			parts = append(parts, nodeRoleID(gr.role, n))
		}
	}
	return strings.Join(parts, ", ")
}
