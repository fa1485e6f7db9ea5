package graph

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sync/errgroup"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
)

// Action is what a plan decided for a node-role.
type Action uint8

// Actions.
const (
	// ActionSkip: converged — same role version, same inputs, last run
	// succeeded (and its check, if any, found no drift).
	ActionSkip Action = iota + 1
	// ActionRun: the node-role runs; Step.Reason says why.
	ActionRun
	// ActionRunIfChanged: its inputs are known only after something it
	// waits for has run; the executor binds them then, and runs the
	// node-role only if they changed.
	ActionRunIfChanged
	// ActionHold: a destructive role was interrupted mid-run; it is not run
	// again without Force, and what waits for it is blocked.
	ActionHold
)

var actionNames = [...]string{"", "skip", "run", "run-if-changed", "hold"}

// String returns the action's name ("run", "skip", ...).
func (a Action) String() string {
	if a > 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Step is the plan for one node-role.
type Step struct {
	// ID is "role@node", or the role's name for a service-scope role.
	ID   string
	Role string
	// Node is the node it runs on; "" for service scope.
	Node   string
	Action Action
	// Why is the kind of reason: branch on it.
	Why ReasonKind
	// Reason says why, in words: "new", "input Peers changed: +n4",
	// "role version changed: 3.4 → 3.5", "drifted: etcd is not running",
	// "converged", "inputs known after run (waits for a@n1, a@n2)".
	Reason string
	// Changed lists the input fields whose value changed, when known.
	Changed []string
	// WaitsFor lists the IDs of the node-roles this one waits for.
	WaitsFor []string
	// Last is the state the journal recorded for it (0 if it never ran).
	Last State
}

// Plan is a deployment expanded into node-roles, each with an [Action]
// and the reason for it. Apply it with [Apply].
type Plan struct {
	// Deployment is the deployment's name.
	Deployment string
	// Steps lists every node-role in an order in which each comes after
	// everything it waits for.
	Steps []Step

	// Removals lists the nodes that left the deployment, by name, with
	// the node-roles to undo and forget on each; Apply removes them
	// before anything else runs.
	Removals []Removal

	// Orphans lists node-roles the journal knows on nodes that are still
	// in the deployment, whose role no longer is bound there. Nothing
	// runs for them.
	Orphans []string

	applied  atomic.Bool
	d        *Deployment
	st       store.Store
	g        *dag
	recs     []*record
	outs     []any // outputs of skipped node-roles, from the journal
	nodeVals map[string]*attr.Values
	seal     *sealer    // the deployment's keys, nil without secrets (secrets.go)
	aggs     *aggValues // aggregates gathered from outs (aggregate.go)
	aggWaits *aggWaits
}

// PlanOption changes how [NewPlan] decides.
type PlanOption func(*planConfig)

type planConfig struct {
	force     map[string]bool
	forceAll  bool
	checkPar  int
	skipCheck bool
	// forceRemove names leaving nodes whose failed undos do not stop
	// their removal (ForceRemove).
	forceRemove map[string]bool
}

// Force plans the given node-roles (IDs like "etcd-member@n1") or roles
// (names: every node-role of the role) to run even when converged, and
// allows destructive roles to run again.
func Force(idsOrRoles ...string) PlanOption {
	return func(c *planConfig) {
		for _, s := range idsOrRoles {
			c.force[s] = true
		}
	}
}

// ForceAll plans every node-role to run.
func ForceAll() PlanOption { return func(c *planConfig) { c.forceAll = true } }

// CheckParallelism bounds how many drift checks run at once (default 8).
func CheckParallelism(n int) PlanOption { return func(c *planConfig) { c.checkPar = n } }

// SkipChecks plans without running drift checks.
func SkipChecks() PlanOption { return func(c *planConfig) { c.skipCheck = true } }

// NewPlan expands d into node-roles, reads the journal of the deployment from
// st, and decides for every node-role whether it runs, and why. Wiring
// mistakes (a missing or ambiguous input, an unknown required role, a
// service no one provides, a cycle) fail here, before anything runs.
// Converged node-roles whose role has a Check are checked for drift, in
// parallel. Several mistakes come as one *Problems, each distinct cause
// once.
func NewPlan(ctx context.Context, d *Deployment, st store.Store, opts ...PlanOption) (*Plan, error) {
	cfg := planConfig{force: map[string]bool{}, checkPar: 8}
	for _, o := range opts {
		o(&cfg)
	}
	g, err := build(d)
	if err != nil {
		return nil, gather("planning "+d.name, err)
	}
	keys, recMap, err := loadJournal(ctx, d, g, st) // with the deployment's keys (secrets.go)
	if err != nil {
		return nil, err
	}
	n := len(g.nrs)
	p := &Plan{Deployment: d.name, Steps: make([]Step, n), d: d, st: st, g: g, seal: keys,
		recs: make([]*record, n), outs: make([]any, n), nodeVals: map[string]*attr.Values{}}
	p.aggs, g.peerSets = newAggValues(g, func(i int32) any { return p.outs[i] }), newPeerSets(ctx, st, d.name)
	p.aggWaits = newAggWaits(g)
	for name := range d.nodeAttrs {
		d.attrsFor(name, p.nodeVals)
	}
	checks, ins, err := p.decideAll(recMap, &cfg)
	if err == nil {
		err = keys.refusal() // after wiring errors, before any check runs
	}
	if err != nil {
		return nil, gather("planning "+d.name, err)
	}
	if p.Removals, p.Orphans, err = p.planRemovals(ctx, recMap, &cfg); err != nil {
		return nil, err
	}
	if len(checks) > 0 {
		if err := p.runChecks(ctx, checks, ins, cfg.checkPar); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// decideAll fills every step, in topological order, with what decide
// says from the journal records. It returns the converged node-roles to
// check for drift, with their inputs.
func (p *Plan) decideAll(recMap map[string]*record, cfg *planConfig) (checks []int, ins []any, err error) {
	g := p.g
	zeros := map[reflect.Type]any{}
	var errs *multierror.Error
	nwaits := 0
	for _, nr := range g.nrs {
		if len(nr.aggs) == 0 {
			nwaits += len(nr.deps)
		}
	}
	waits := make([]string, nwaits)
	for i, nr := range g.nrs {
		rec := recMap[nr.id]
		p.recs[i] = rec
		s := &p.Steps[i]
		*s = Step{ID: nr.id, Role: nr.meta.Name, Node: nr.name}
		if len(nr.deps)+len(nr.aggs) > 0 {
			// Cut from one array for all steps (or shared with an
			// aggregate's consumers), capped so that appending to one
			// step's list never writes into another's.
			s.WaitsFor = g.waitsFor(int32(i), &waits)
		}
		if rec != nil {
			s.Last = rec.State
		}
		f := facts{stage: stagePlan, g: g, keys: p.seal, nr: nr, rec: rec, forced: cfg.forceAll || cfg.force[nr.id] || cfg.force[nr.meta.Name]}
		// Are all inputs known now?
		f.waitsFor = p.waitsFor(nr)
		outputs := func(i int32) any {
			if f.waitsFor == "" {
				return p.outs[i]
			}
			t := g.nrs[i].def.Out()
			z, ok := zeros[t]
			if !ok {
				z = reflect.Zero(t).Interface()
				zeros[t] = z
			}
			return z
		}
		// Bind now when the inputs are known (for the digest), or when
		// attributes must be checked; wiring was checked by build.
		if f.waitsFor == "" || nr.hasAttr {
			in, shared, err := p.bind(i, outputs, p.aggs, f.waitsFor == "", nil, true)
			if err != nil {
				errs = multierror.Append(errs, err)
				continue
			}
			f.in, f.shared = in, shared
		}
		v := decide(&f)
		if v.err != nil {
			errs = multierror.Append(errs, v.err)
			continue
		}
		p.setStep(i, v)
		if v.action == ActionSkip && nr.def.HasCheck() && !cfg.skipCheck {
			if ins == nil {
				ins = make([]any, len(g.nrs))
			}
			ins[i] = f.in
			checks = append(checks, i)
		}
	}
	return checks, ins, errs.ErrorOrNil()
}

// setStep records verdict v in step i. (Fields are written only when
// they change: pointer writes cost while the collector runs.)
func (p *Plan) setStep(i int, v verdict) {
	s := &p.Steps[i]
	s.Action, s.Why, s.Reason = v.action, v.why.kind, v.why.String()
	if v.action == ActionRun && v.why.changed != nil {
		s.Changed = v.why.changed
	} else if s.Changed != nil {
		s.Changed = nil
	}
	if v.out != nil || p.outs[i] != nil {
		p.outs[i] = v.out
	}
}

// bind fills node-role i's input from the outputs given by out, and its
// All inputs from aggs if known, empty otherwise; it returns the input
// and those aggregates' digests by field. scratch, if not nil, is reused
// for the list of upstream outputs (Bind keeps none of it). planning
// leaves the services of nodes that do not exist yet unresolved
// (role.Env.NodePending).
func (p *Plan) bind(i int, out func(int32) any, aggs *aggValues, known bool, scratch *[]role.Output, planning bool) (any, map[string]string, error) {
	return p.bindRecording(i, out, aggs, known, scratch, planning, nil)
}

// bindRecording is bind, recording in *bindings, when not nil, where each
// input field came from (Plan.Inputs).
func (p *Plan) bindRecording(i int, out func(int32) any, aggs *aggValues, known bool, scratch *[]role.Output, planning bool, bindings *[]role.Binding) (any, map[string]string, error) {
	nr := p.g.nrs[i]
	env := role.Env{Node: nr.name}
	if nr.def.UsesServices() {
		env = nr.usesEnv(p.d.services, planning)
	}
	shared, digests, err := aggs.env(nr, known)
	if err != nil {
		return nil, nil, err
	}
	env.Shared = shared
	if nr.hasAttr {
		env.Attrs = p.attrsFor(nr.name)
		if len(nr.pubs) > 0 {
			env.Attrs = env.Attrs.Clone()
			for _, pi := range nr.pubs {
				pub := p.g.nrs[pi]
				if err := pub.publish(env.Attrs, out(pi)); err != nil {
					return nil, nil, fmt.Errorf("graph: %s: %w", nr.id, err)
				}
			}
		}
	}
	if len(nr.wired) > 0 {
		var outs []role.Output
		if scratch != nil {
			outs = (*scratch)[:0]
		}
		for _, w := range nr.wired {
			outs = append(outs, role.Output{Role: p.g.nrs[w].meta.Name, Node: p.g.nrs[w].name, Value: out(w)})
		}
		env.Outputs = outs
		if scratch != nil {
			defer func() {
				clear(outs) // keep no outputs alive
				*scratch = outs[:0]
			}()
		}
	}
	var in any
	if bindings != nil {
		in, *bindings, err = nr.def.Bind(env)
	} else {
		in, err = nr.def.BindInput(env)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("graph: planning %s: %w", nr.id, err)
	}
	return in, digests, nil
}

// publish sets the attributes node-role nr publishes, from its output
// out: fields tagged `attr` and those named by Deployment.PublishOutput.
func (nr *nodeRole) publish(vs *attr.Values, out any) error {
	if err := nr.def.Publish(vs, nr.name, out); err != nil {
		return err
	}
	if len(nr.meta.aliases) == 0 {
		return nil
	}
	v := reflect.ValueOf(out) // its type was checked by Publish
	for _, al := range nr.meta.aliases {
		if err := vs.SetAny(al.attr, v.Field(al.index).Interface(), attr.FromOutput(nr.meta.Name, nr.name)); err != nil {
			return fmt.Errorf("role %q: publishing output %s as %q: %w", nr.meta.Name, al.field, al.attr, err)
		}
	}
	return nil
}

func (p *Plan) attrsFor(node string) *attr.Values {
	if vs, ok := p.nodeVals[node]; ok {
		return vs
	}
	return p.d.attrs
}

// peerLabels names producers by node, or by role for service scope.
func peerLabels(g *dag, is []int32) []string {
	out := make([]string, len(is))
	for k, i := range is {
		if g.nrs[i].name != "" {
			out[k] = g.nrs[i].name
		} else {
			out[k] = g.nrs[i].meta.Name
		}
	}
	sort.Strings(out)
	return out
}

func diffSorted(now, was []string) (add, del []string) {
	i, j := 0, 0
	for i < len(now) || j < len(was) {
		switch {
		case j == len(was) || (i < len(now) && now[i] < was[j]):
			add = append(add, now[i])
			i++
		case i == len(now) || was[j] < now[i]:
			del = append(del, was[j])
			j++
		default:
			i++
			j++
		}
	}
	return add, del
}

func changedFields(now, was fieldDigests) []string {
	var out []string
	for k, f := range now.names {
		if d, _ := was.get(f); d != now.digs[k] {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		out = []string{"set"} // same fields, different total: schema changed
	}
	return out
}

// runChecks runs the drift checks of the converged node-roles idx, at
// most par at once, and re-decides those that drifted — and what waits
// for them, whose inputs are then known only after they run.
func (p *Plan) runChecks(ctx context.Context, idx []int, ins []any, par int) error {
	type result struct {
		drift string
		err   error
	}
	res := make([]result, len(idx))
	var eg errgroup.Group
	eg.SetLimit(max(1, par))
	for k, i := range idx {
		if ctx.Err() != nil {
			break
		}
		eg.Go(func() error {
			nr := p.g.nrs[i]
			rc := role.NewContext(role.ContextOptions{Deployment: p.d.name, Role: nr.meta.Name, Node: nr.node,
				Logger: p.d.logger, Services: p.d.services, Attempt: 1})
			res[k].drift, res[k].err = nr.def.Check(ctx, rc, ins[i], p.outs[i])
			return nil // a failed check is a reason to run, not a planning error
		})
	}
	_ = eg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("graph: drift checks of %s: %w", p.d.name, err)
	}
	for k, i := range idx {
		f := facts{stage: stageChecked, g: p.g, nr: p.g.nrs[i], prev: verdict{action: ActionSkip}, drift: res[k].drift, checkErr: res[k].err}
		if v := decide(&f); v.action != ActionSkip {
			p.setStep(i, v)
		}
	}
	// Whatever waits for a node-role that runs learns its inputs only
	// after that. (Only plans with checks take this pass, so a skipped
	// destructive role whose upstream runs shows as run-if-changed here
	// and as destructive-done without checks; the executor skips it
	// either way.)
	p.aggWaits = newAggWaits(p.g) // steps changed
	for i, nr := range p.g.nrs {
		if p.Steps[i].Action != ActionSkip {
			continue
		}
		if w := p.waitsFor(nr); w != "" {
			p.setStep(i, decide(&facts{stage: stageUpstreamRuns, g: p.g, nr: nr, waitsFor: w}))
		}
	}
	return nil
}

// Count returns how many steps have action a.
func (p *Plan) Count(a Action) int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == a {
			n++
		}
	}
	return n
}

// Step returns the step of the node-role id.
func (p *Plan) Step(id string) (Step, bool) {
	i, ok := p.g.index[id]
	if !ok {
		return Step{}, false
	}
	return p.Steps[i], true
}

// Converged reports whether applying the plan would change nothing:
// nothing runs, nothing is held, no node is to be removed.
func (p *Plan) Converged() bool {
	return len(p.Removals) == 0 && p.Count(ActionSkip) == len(p.Steps)
}

// String lists the plan, one node-role per line: action, ID, reason;
// then the nodes to remove, each with the node-roles to undo and forget.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan for %s: %d to run, %d to run if changed, %d converged", p.Deployment,
		p.Count(ActionRun), p.Count(ActionRunIfChanged), p.Count(ActionSkip))
	if h := p.Count(ActionHold); h > 0 {
		fmt.Fprintf(&b, ", %d held", h)
	}
	if n := len(p.Removals); n == 1 {
		b.WriteString(", 1 node to remove")
	} else if n > 1 {
		fmt.Fprintf(&b, ", %d nodes to remove", n)
	}
	b.WriteByte('\n')
	for _, s := range p.Steps {
		fmt.Fprintf(&b, "  %-14s %s: %s\n", s.Action, s.ID, s.Reason)
	}
	removalText(&b, p.Removals)
	return b.String()
}
