package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/claim"
)

// NodeDeleter deletes nodes that left a deployment, once their node-roles
// are undone; see [Deployment.DeleteNodesWith]. Package deploy provides
// one for a provider's nodes. The graph itself knows no provider.
type NodeDeleter interface {
	// DeleteNode deletes the node called name. A node that is already
	// gone is not an error.
	DeleteNode(ctx context.Context, name string) error
}

// Removal is the plan for one node that left the deployment: the journal
// still knows node-roles on it (or it is named by [Deployment.Leaving]),
// but the deployment no longer has it. [Apply] undoes its node-roles in
// Steps' order, then has the node deleted ([Deployment.DeleteNodesWith])
// and forgets it — before anything else runs, so peers whose aggregate
// inputs lose the node ("input Peers changed: -web-4") run after it is
// gone.
type Removal struct {
	// Node is the node's name.
	Node string
	// Why is ReasonNodeLeft, or ReasonForcedRemoval for ForceRemove;
	// Reason says it in words ("node web-4 left the deployment").
	Why    ReasonKind
	Reason string
	// Steps are its node-roles in the order they are undone: reverse
	// dependency order, those without an Undo (only forgotten) last.
	Steps []RemovalStep
	// Gone says the deployment deletes nodes (DeleteNodesWith) but was
	// not given this one (Leaving): it no longer exists, so undos that
	// need it fail; force the removal to forget it anyway.
	Gone bool

	known bool // the journal or a removal mark knew it when planned
}

// RemovalStep is one node-role of a leaving node.
type RemovalStep struct {
	ID   string
	Role string
	// Undo says the role's Undo runs (it has one, and the node-role
	// succeeded before); otherwise the node-role is only forgotten.
	Undo bool
	// Reason says what happens to it and why: "undo: node web-4 left the
	// deployment", "forget: role has no Undo".
	Reason string
	// Last is the state the journal recorded for it.
	Last State

	def  *role.Def
	last *success
}

// RemovalError is a removal that stopped: an undo that failed (the node
// is not deleted), or a node that could not be deleted.
type RemovalError struct {
	Node string
	// ID is the node-role whose undo failed; "" when deleting the node
	// failed.
	ID  string
	Err error
}

// Error implements error.
func (e *RemovalError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("graph: removing node %s: deleting it: %v; apply again to retry", e.Node, e.Err)
	}
	return fmt.Sprintf("graph: removing node %s: undo of %s failed: %v; the node was not deleted and nothing else ran: fix it and apply again, or force the removal", e.Node, e.ID, e.Err)
}

// Unwrap returns the undo's or the deleter's error.
func (e *RemovalError) Unwrap() error { return e.Err }

// Removed is what became of one node's removal in an Apply.
type Removed struct {
	Node string
	// Done says its node-roles are undone and forgotten, and the node
	// deleted (when the deployment deletes nodes).
	Done bool
	// Undone lists the node-roles whose Undo ran and succeeded.
	Undone []string
	// Err is why it stopped; with a forced removal, the undos that failed
	// (they did not stop it).
	Err error
}

// ForceRemove removes the named nodes that left the deployment even if
// their undos fail — for a node that is already gone: each undo still
// runs (one that reaches the rest of the cluster, such as a member-remove,
// may succeed), but its failure no longer blocks the removal.
func ForceRemove(nodes ...string) PlanOption {
	return func(c *planConfig) {
		if c.forceRemove == nil {
			c.forceRemove = map[string]bool{}
		}
		for _, n := range nodes {
			c.forceRemove[n] = true
		}
	}
}

func removalPrefix(deployment string) string { return "mason/graph/" + deployment + "/removal/" }

// removalMark is kept in the store while a node is being removed, so
// that a crash after its last node-role was forgotten, before the node
// was deleted, still resumes the removal.
type removalMark struct {
	Node    string    `json:"node"`
	Started time.Time `json:"started"`
	Error   string    `json:"error,omitempty"`
}

// planRemovals finds the nodes that left the deployment and plans their
// removal; what the journal knows and no removal takes is left in
// orphans.
func (p *Plan) planRemovals(ctx context.Context, recMap map[string]*record, cfg *planConfig) (removals []Removal, orphans []string, err error) {
	d, g := p.d, p.g
	ents, _, err := p.st.List(ctx, removalPrefix(d.name))
	if err != nil {
		return nil, nil, fmt.Errorf("graph: reading the removals of %s: %w", d.name, err)
	}
	left := map[string]bool{}
	known := map[string]bool{}
	for _, e := range ents {
		n := strings.TrimPrefix(e.Key, removalPrefix(d.name))
		left[n], known[n] = true, true
	}
	var errs []error
	for name := range d.leaving {
		if _, ok := d.nodes[name]; ok {
			errs = append(errs, fmt.Errorf("graph: node %q is both in deployment %s and leaving it (Leaving); drop it from one", name, d.name))
			continue
		}
		left[name] = true
	}
	byNode := map[string][]*record{}
	for id, rec := range recMap {
		if _, ok := g.index[id]; ok {
			continue
		}
		_, node, ok := strings.Cut(id, "@")
		if _, kept := d.nodes[node]; !ok || kept {
			orphans = append(orphans, id) // a role dropped, not a node
			continue
		}
		left[node], known[node] = true, true
		byNode[node] = append(byNode[node], rec)
	}
	for n := range cfg.forceRemove {
		if !left[n] {
			why := "the journal knows no node-role on it"
			if _, ok := d.nodes[n]; ok {
				why = "it is still in the deployment"
			}
			errs = append(errs, fmt.Errorf("graph: ForceRemove(%q): node %s has not left deployment %s: %s", n, n, d.name, why))
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	defs := map[string]*role.Def{}
	rank := map[string]int{}
	for _, b := range d.binds {
		for _, def := range b.defs {
			defs[def.Name()] = def
		}
	}
	for i, nr := range g.nrs {
		if _, ok := rank[nr.meta.Name]; !ok {
			rank[nr.meta.Name] = i
		}
	}
	for node := range left {
		rm := Removal{Node: node, Why: ReasonNodeLeft, Gone: d.deleter != nil && d.leaving[node] == nil, known: known[node]}
		if cfg.forceRemove[node] {
			rm.Why = ReasonForcedRemoval
		}
		rm.Reason = reason{kind: rm.Why, node: node}.String()
		for _, rec := range byNode[node] {
			roleName, _, _ := strings.Cut(rec.ID, "@")
			s := RemovalStep{ID: rec.ID, Role: roleName, Last: rec.State, def: defs[roleName], last: rec.Last}
			switch {
			case s.def == nil:
				s.Reason = "forget: role " + roleName + " is not in the deployment any more, so it cannot be undone"
			case !s.def.HasUndo():
				s.Reason = "forget: the role has no Undo"
			case rec.Last == nil:
				s.Reason = "forget: it never succeeded, so there is nothing to undo"
			default:
				s.Undo = true
				s.Reason = "undo: " + rm.Reason
				if rec.State == StateFailed && strings.HasPrefix(rec.Error, undoFailed) {
					s.Reason += "; " + rec.Error
				}
			}
			rm.Steps = append(rm.Steps, s)
		}
		sort.Slice(rm.Steps, func(a, b int) bool {
			sa, sb := rm.Steps[a], rm.Steps[b]
			if sa.Undo != sb.Undo {
				return sa.Undo
			}
			ra, oka := rank[sa.Role]
			rb, okb := rank[sb.Role]
			if oka != okb || ra != rb {
				return oka && (!okb || ra > rb)
			}
			return sa.ID < sb.ID
		})
		removals = append(removals, rm)
	}
	sort.Slice(removals, func(a, b int) bool { return removals[a].Node < removals[b].Node })
	sort.Strings(orphans)
	return removals, orphans, nil
}

const undoFailed = "undo failed: "

// removeLeft runs the plan's removals, one node at a time in name order
// (a cluster loses one member at a time), and reports whether every one
// was done: if not, Apply runs nothing else, since the node's peers
// would run as if it were gone.
func (e *executor) removeLeft() bool {
	if len(e.p.Removals) == 0 {
		return true
	}
	ok := true
	for i := range e.p.Removals {
		if e.ctx.Err() != nil {
			return false
		}
		out := e.removeNode(&e.p.Removals[i])
		e.removed = append(e.removed, out)
		if !out.Done {
			ok = false
		}
	}
	return ok
}

// removeNode undoes rm's node-roles, deletes the node and forgets it.
func (e *executor) removeNode(rm *Removal) Removed {
	p := e.p
	out := Removed{Node: rm.Node}
	fail := func(err error) Removed {
		out.Err = err
		e.errs = multierror.Append(e.errs, err)
		return out
	}
	w := removalWriter{st: p.st}
	if e.o.ctl != nil {
		cl, err := e.o.ctl.sess.Claim(e.ctx, "removal/"+rm.Node)
		if err != nil {
			return fail(&RemovalError{Node: rm.Node, Err: fmt.Errorf("claiming its removal (another controller may be removing it; apply again once it is done): %w", err)})
		}
		w.cl = cl
		defer func() { _ = cl.Release(context.WithoutCancel(e.ctx)) }()
		// Another controller may have removed it since the plan.
		if rm.known {
			gone, err := e.removedElsewhere(rm.Node)
			if err != nil {
				return fail(&RemovalError{Node: rm.Node, Err: err})
			}
			if gone {
				out.Done = true
				return out
			}
		}
	}
	markKey := removalPrefix(p.Deployment) + rm.Node
	mark := removalMark{Node: rm.Node, Started: time.Now().UTC()}
	if err := w.put(e.ctx, markKey, mark); err != nil {
		return fail(&RemovalError{Node: rm.Node, Err: fmt.Errorf("journaling its removal: %w", err)})
	}
	node := p.d.leaving[rm.Node]
	if node == nil {
		node = &provider.Node{Name: rm.Node} // gone: undos get only its name
	}
	forced := rm.Why == ReasonForcedRemoval
	var undoErrs []error
	for _, s := range rm.Steps {
		if !s.Undo {
			continue
		}
		if err := e.undo(rm, &s, node, w); err != nil {
			var re *RemovalError
			if errors.As(err, &re) && re.ID == "" {
				return fail(err) // the journal failed
			}
			if !forced {
				mark.Error = err.Error()
				_ = w.put(e.ctx, markKey, mark)
				return fail(err)
			}
			undoErrs = append(undoErrs, err)
			continue
		}
		out.Undone = append(out.Undone, s.ID)
	}
	if d := p.d.deleter; d != nil {
		if err := d.DeleteNode(e.runCtx, rm.Node); err != nil {
			err = &RemovalError{Node: rm.Node, Err: err}
			mark.Error = err.Error()
			_ = w.put(e.ctx, markKey, mark)
			return fail(err)
		}
	}
	// Forget it: what is left of its records, and the mark, at once.
	ents, _, err := p.st.List(e.ctx, journalPrefix(p.Deployment))
	if err != nil {
		return fail(&RemovalError{Node: rm.Node, Err: fmt.Errorf("forgetting it: %w", err)})
	}
	ops := []store.Op{store.DeleteOp(markKey)}
	for _, ent := range ents {
		if strings.HasSuffix(ent.Key, "@"+rm.Node) {
			ops = append(ops, store.DeleteOp(ent.Key))
		}
	}
	if err := w.txn(e.ctx, ops...); err != nil {
		return fail(&RemovalError{Node: rm.Node, Err: fmt.Errorf("forgetting it: %w", err)})
	}
	out.Done = true
	if len(undoErrs) > 0 {
		out.Err = errors.Join(undoErrs...) // forced: reported, not stopping
	}
	return out
}

// undo runs the Undo of step s on node, retrying as its role's policy
// says, and journals it: "running" before, the record deleted after
// (the removal mark keeps the node known), "failed" with the error.
func (e *executor) undo(rm *Removal, s *RemovalStep, node *provider.Node, w removalWriter) error {
	p := e.p
	reason := "undo: " + rm.Reason
	key := journalPrefix(p.Deployment) + s.ID
	ev := Event{Deployment: p.Deployment, ID: s.ID, Role: s.Role, Node: rm.Node, Why: rm.Why, Reason: reason}
	last, err := decodeOutput(s.last.Output, s.def.Out())
	if err != nil {
		err = fmt.Errorf("its journaled output is unreadable: %w", err)
		return e.undoFailed(rm, s, w, key, ev, 0, 0, err)
	}
	started := time.Now()
	attempts := 0
	var buf []byte
	op := func() error {
		attempts++
		rec := record{ID: s.ID, State: StateRunning, Attempt: attempts, Reason: reason, At: time.Now(), Last: s.last}
		var err error
		if buf, err = p.seal.marshal(&rec, key, buf[:0]); err != nil { // a secret output stays sealed
			return backoff.Permanent(&RemovalError{Node: rm.Node, Err: fmt.Errorf("journaling the undo of %s: %w", s.ID, err)})
		}
		if err := w.txn(e.ctx, store.PutOp(key, append([]byte(nil), buf...))); err != nil {
			return backoff.Permanent(&RemovalError{Node: rm.Node, Err: fmt.Errorf("journaling the undo of %s: %w", s.ID, err)})
		}
		ev.State, ev.Attempt, ev.Err, ev.Duration = StateRunning, attempts, nil, 0
		e.em.emit(ev)
		rc := role.NewContext(role.ContextOptions{Deployment: p.Deployment, Role: s.Role, Node: node,
			Logger: e.logger, Services: e.services, Attempt: attempts})
		return s.def.Undo(e.runCtx, rc, last)
	}
	notify := func(err error, wait time.Duration) {
		ev.State, ev.Err = StateRetrying, err
		ev.Reason = fmt.Sprintf("undo attempt %d failed; next in %v", attempts, wait.Round(time.Millisecond))
		e.em.emit(ev)
		ev.Reason = reason
	}
	meta := s.def.Meta()
	err = backoff.RetryNotify(op, retryPolicy(e.ctx, meta.Retry), notify)
	dur := time.Since(started)
	if err != nil {
		var re *RemovalError
		if errors.As(err, &re) {
			return err
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			err = perm.Err
		}
		return e.undoFailed(rm, s, w, key, ev, attempts, dur, err)
	}
	if err := w.txn(e.ctx, store.DeleteOp(key)); err != nil {
		return &RemovalError{Node: rm.Node, Err: fmt.Errorf("journaling the undo of %s: %w", s.ID, err)}
	}
	ev.State, ev.Attempt, ev.Duration, ev.Err = StateSucceeded, attempts, dur, nil
	e.em.emit(ev)
	return nil
}

// undoFailed journals and announces a failed undo, and returns its
// *RemovalError.
func (e *executor) undoFailed(rm *Removal, s *RemovalStep, w removalWriter, key string, ev Event, attempts int, dur time.Duration, err error) error {
	rec := record{ID: s.ID, State: StateFailed, Attempt: attempts, Reason: ev.Reason, Error: undoFailed + err.Error(), At: time.Now(), Duration: dur, Last: s.last}
	b, jerr := e.p.seal.marshal(&rec, key, nil) // a secret output stays sealed
	if jerr == nil {
		jerr = w.txn(e.ctx, store.PutOp(key, b))
	}
	if jerr != nil {
		return &RemovalError{Node: rm.Node, Err: fmt.Errorf("journaling the undo of %s: %w", s.ID, jerr)}
	}
	ev.State, ev.Attempt, ev.Duration, ev.Err = StateFailed, attempts, dur, err
	e.em.emit(ev)
	return &RemovalError{Node: rm.Node, ID: s.ID, Err: err}
}

// removalWriter writes a removal's records at once (removals are few and
// slow: no group commit), fenced by the removal's claim with a
// Controller.
type removalWriter struct {
	st store.Store
	cl *claim.Claim
}

func (w removalWriter) txn(ctx context.Context, ops ...store.Op) error {
	ctx = context.WithoutCancel(ctx) // what happened must be written, also when stopping
	if w.cl != nil {
		_, err := w.cl.Txn(ctx, ops...)
		return err
	}
	_, err := w.st.Txn(ctx, ops...)
	return err
}

func (w removalWriter) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.txn(ctx, store.PutOp(key, b))
}

// removalText lists the removals for Plan.String.
func removalText(b *strings.Builder, rms []Removal) {
	for _, rm := range rms {
		fmt.Fprintf(b, "  %-14s %s: %s", "remove", "node "+rm.Node, rm.Reason)
		if rm.Gone {
			b.WriteString(" (it is gone: undos that need it will fail)")
		}
		b.WriteByte('\n')
		for _, s := range rm.Steps {
			action := "forget"
			if s.Undo {
				action = "undo"
			}
			_, why, _ := strings.Cut(s.Reason, ": ")
			fmt.Fprintf(b, "  %-14s %s: %s\n", action, s.ID, why)
		}
	}
}

// removedElsewhere reports whether the store knows nothing more of node:
// no removal mark, no record. (With a Controller, another one may have
// finished its removal since the plan.)
func (e *executor) removedElsewhere(node string) (bool, error) {
	p := e.p
	if _, err := p.st.Get(e.ctx, removalPrefix(p.Deployment)+node); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("reading its removal: %w", err)
	}
	ents, _, err := p.st.List(e.ctx, journalPrefix(p.Deployment))
	if err != nil {
		return false, fmt.Errorf("reading the journal: %w", err)
	}
	for _, ent := range ents {
		if strings.HasSuffix(ent.Key, "@"+node) {
			return false, nil
		}
	}
	return true, nil
}
