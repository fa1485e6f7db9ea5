package graph

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
)

// An aggregate is the value of role.All inputs over one set of producers
// — every node's output of a type, of a role if the field names one —
// shared by all the consumers of that set: "every node reads every peer"
// costs O(N), not O(N²). Its producers are resolved once (role.Input.Peers,
// the wiring rule), its value is gathered and digested once per plan and
// per Apply, its consumers wait for it as for one node-role (the
// scheduler's barrier), and their journal records name its peers by a
// reference to one peer set stored beside the journal.
//
// A consumer that is itself among the producers (its role outputs the
// type it aggregates) gets an aggregate of its own, resolved for it
// alone: it must not wait for itself.
type aggregate struct {
	in        role.Input // of the first consumer: the type and role tag, for Gather
	shared    bool       // several consumers may use it
	producers []int32    // in (node, role) order, as the wiring rule chose them
	consumers []int32
	byIndex   []int32  // producers in plan order, for WaitsFor
	labels    []string // producers named by node (by role for service scope), sorted
	ref       string   // names labels in the journal (peerSetRef)
	refs      []string // []string{ref}: what every consumer's success records
	waits     []string // WaitsFor of a consumer that waits for nothing else; built once
}

type aggKey struct {
	t    reflect.Type
	role string
}

// aggregateFor finds (or makes) the aggregate that fills All input in of
// node-role i, whose candidate producers, in (node, role) order, are
// cands; it returns its index, and the wiring rule's error when nothing
// fills a required input.
func (b *builder) aggregateFor(i int, in role.Input, cands []int32) (int32, error) {
	nr := b.nrs[i]
	self := nr.def.Out() == in.Type && (in.Role == "" || in.Role == nr.meta.Name)
	key := aggKey{in.Type, in.Role}
	a, ok := b.aggIndex[key]
	if !ok || self {
		var ps []role.Producer
		var kept []int32
		for _, c := range cands {
			if b.nrs[c].def.Out() == in.Type {
				ps, kept = append(ps, b.nrs[c].producer()), append(kept, c)
			}
		}
		var m []int
		if self {
			var err error
			if m, err = in.Resolve(nr.meta.Name, nr.name, ps, nil); err != nil {
				return -1, err
			}
		} else {
			m = in.Peers(ps, nil)
		}
		agg := &aggregate{in: in, shared: !self, producers: make([]int32, len(m))}
		for k, x := range m {
			agg.producers[k] = kept[x]
		}
		a = int32(len(b.g.aggs))
		b.g.aggs = append(b.g.aggs, agg)
		if !self {
			if b.aggIndex == nil {
				b.aggIndex = map[aggKey]int32{}
			}
			b.aggIndex[key] = a
		}
	}
	agg := b.g.aggs[a]
	if k := len(agg.consumers); k == 0 || agg.consumers[k-1] != int32(i) { // once, if two fields share it
		agg.consumers = append(agg.consumers, int32(i))
	}
	if len(agg.producers) == 0 && !in.Optional {
		_, err := in.Resolve(nr.meta.Name, nr.name, nil, nil) // says what is missing, as for any input
		return a, err
	}
	return a, nil
}

// finishAggregates names every aggregate's peers, once node-roles have
// their final numbers.
func (g *dag) finishAggregates() {
	for _, agg := range g.aggs {
		agg.labels = peerLabels(g, agg.producers)
		agg.ref = peerSetRef(agg.labels)
		agg.refs = []string{agg.ref}
		agg.byIndex = slices.Sorted(slices.Values(agg.producers))
		slices.Sort(agg.consumers)
	}
}

// vertices is the number of vertices the scheduler sees: every node-role,
// then every aggregate (a barrier: done when all its producers are).
func (g *dag) vertices() int { return len(g.nrs) + len(g.aggs) }

// schedGraph is what the scheduler walks: for every vertex what waits for
// it, and how many things it waits for.
func (g *dag) schedGraph() (kids [][]int32, deps []int32) {
	n := len(g.nrs)
	kids = make([][]int32, g.vertices())
	deps = make([]int32, g.vertices())
	for i, nr := range g.nrs {
		kids[i], deps[i] = nr.kids, int32(len(nr.deps)+len(nr.aggs))
	}
	for a, agg := range g.aggs {
		kids[n+a], deps[n+a] = agg.consumers, int32(len(agg.producers))
		if len(agg.producers) == 0 {
			kids[n+a] = nil // nothing waits for an empty aggregate
		}
	}
	return kids, deps
}

// waitsFor returns Step.WaitsFor of node-role i: the IDs of its direct
// dependencies and of its aggregates' producers, in plan order. A
// consumer that waits for one aggregate and nothing outside it shares
// the aggregate's list (capped: appending to it copies); others get their
// own. buf is cut for node-roles without aggregates.
func (g *dag) waitsFor(i int32, buf *[]string) []string {
	nr := g.nrs[i]
	if len(nr.aggs) == 0 {
		out := (*buf)[:len(nr.deps):len(nr.deps)]
		*buf = (*buf)[len(nr.deps):]
		for k, dep := range nr.deps {
			out[k] = g.nrs[dep].id
		}
		return out
	}
	if len(nr.aggs) == 1 {
		agg := g.aggs[nr.aggs[0]]
		inside := true
		for _, dep := range nr.deps {
			if _, ok := slices.BinarySearch(agg.byIndex, dep); !ok {
				inside = false
				break
			}
		}
		if inside {
			if agg.waits == nil {
				agg.waits = make([]string, len(agg.byIndex))
				for k, p := range agg.byIndex {
					agg.waits[k] = g.nrs[p].id
				}
			}
			return agg.waits[:len(agg.waits):len(agg.waits)]
		}
	}
	all := slices.Clone(nr.deps)
	for _, a := range nr.aggs {
		all = append(all, g.aggs[a].byIndex...)
	}
	all = uniqueSorted(all)
	out := make([]string, len(all))
	for k, dep := range all {
		out[k] = g.nrs[dep].id
	}
	return out
}

// aggValues holds aggregates' values and digests, each gathered once,
// from the outputs of one plan or one Apply; workers share it.
type aggValues struct {
	g    *dag
	out  func(int32) any
	once []sync.Once
	val  []any
	dg   []string
	err  []error
	zero []any // an empty value of each aggregate's type, for bindings made before its producers ran
}

func newAggValues(g *dag, out func(int32) any) *aggValues {
	n := len(g.aggs)
	return &aggValues{g: g, out: out, once: make([]sync.Once, n), val: make([]any, n), dg: make([]string, n),
		err: make([]error, n), zero: make([]any, n)}
}

// get gathers aggregate a from the producers' outputs and digests it,
// the first time it is asked for.
func (av *aggValues) get(a int32) (any, string, error) {
	av.once[a].Do(func() {
		agg := av.g.aggs[a]
		outs := make([]role.Output, len(agg.producers))
		for k, p := range agg.producers {
			nr := av.g.nrs[p]
			outs[k] = role.Output{Role: nr.meta.Name, Node: nr.name, Value: av.out(p)}
		}
		v, err := agg.in.Gather(outs)
		if err == nil {
			av.dg[a], err = attr.Digest(v)
		}
		av.val[a], av.err[a] = v, err
	})
	return av.val[a], av.dg[a], av.err[a]
}

// adopt takes the values of from (the plan's) whose producers all stayed
// converged: an Apply gathers only the aggregates something changed.
func (av *aggValues) adopt(from *aggValues, steps []Step) {
	if from == nil {
		return
	}
next:
	for a, agg := range av.g.aggs {
		if from.val[a] == nil || from.err[a] != nil {
			continue
		}
		for _, p := range agg.producers {
			if steps[p].Action != ActionSkip {
				continue next
			}
		}
		val, dg := from.val[a], from.dg[a]
		av.once[a].Do(func() { av.val[a], av.dg[a] = val, dg })
	}
}

// env returns the shared values of node-role i's All inputs, by field,
// for role.Env.Shared, and their digests for DigestInputsShared. With
// known false the producers have not all run yet: the values are empty
// (what a plan binds to check attributes) and there are no digests.
func (av *aggValues) env(nr *nodeRole, known bool) (map[string]any, map[string]string, error) {
	if len(nr.peers) == 0 {
		return nil, nil, nil
	}
	vals := make(map[string]any, len(nr.peers))
	var dgs map[string]string
	if known {
		dgs = make(map[string]string, len(nr.peers))
	}
	for _, pi := range nr.peers {
		if !known {
			if av.zero[pi.agg] == nil {
				z, err := av.g.aggs[pi.agg].in.Gather(nil)
				if err != nil {
					return nil, nil, err
				}
				av.zero[pi.agg] = z
			}
			vals[pi.field] = av.zero[pi.agg]
			continue
		}
		v, dg, err := av.get(pi.agg)
		if err != nil {
			return nil, nil, fmt.Errorf("graph: %s: %w", nr.id, err)
		}
		vals[pi.field], dgs[pi.field] = v, dg
	}
	return vals, dgs, nil
}

// aggWaits renders, for a plan, what a node-role waits for among the
// node-roles that will run (Plan.waitsFor), looking at each aggregate's
// producers once: which of them run, and how that reads.
type aggWaits struct {
	seen []bool
	runs [][]int32 // an aggregate's producers that will run, in plan order
	said []string  // nodeRolesText of runs, once asked for
}

func newAggWaits(g *dag) *aggWaits {
	n := len(g.aggs)
	return &aggWaits{seen: make([]bool, n), runs: make([][]int32, n), said: make([]string, n)}
}

func (w *aggWaits) running(p *Plan, a int32) []int32 {
	if !w.seen[a] {
		w.seen[a] = true
		for _, q := range p.g.aggs[a].byIndex {
			if p.Steps[q].Action != ActionSkip {
				w.runs[a] = append(w.runs[a], q)
			}
		}
	}
	return w.runs[a]
}

// text is Plan.waitsFor of nr: "" when nothing it waits for runs. A
// node-role whose running dependencies are all producers of one aggregate
// shares that aggregate's text.
func (w *aggWaits) text(p *Plan, nr *nodeRole) string {
	var runs []int32
	for _, dep := range nr.deps {
		if p.Steps[dep].Action != ActionSkip {
			runs = append(runs, dep)
		}
	}
	var from []int32
	for _, a := range nr.aggs {
		if len(w.running(p, a)) > 0 {
			from = append(from, a)
		}
	}
	switch {
	case len(runs) == 0 && len(from) == 0:
		return ""
	case len(from) == 1:
		a := from[0]
		inside := true
		for _, dep := range runs {
			if _, ok := slices.BinarySearch(p.g.aggs[a].byIndex, dep); !ok {
				inside = false
				break
			}
		}
		if inside {
			if w.said[a] == "" {
				w.said[a] = nodeRolesText(p.g, w.runs[a])
			}
			return w.said[a]
		}
	}
	for _, a := range from {
		runs = append(runs, w.runs[a]...)
	}
	return nodeRolesText(p.g, uniqueSorted(runs))
}

// Peer sets: the producers of an aggregate a consumer's last run saw are
// journaled once per set, under mason/graph/<deployment>/peers/<digest>,
// and each consumer's success records the reference peerSetPrefix +
// digest in place of the list. (Records written before peer sets list the
// peers themselves; both are read.)
const peerSetPrefix = "\x00peers:"

func peerSetKey(deployment, ref string) string {
	return "mason/graph/" + deployment + "/peers/" + strings.TrimPrefix(ref, peerSetPrefix)
}

// peerSetRef names a sorted list of peer labels.
func peerSetRef(labels []string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, l := range labels {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(l))))
		h.Write([]byte(l))
	}
	return peerSetPrefix + hex.EncodeToString(h.Sum(nil))
}

func encodePeerSet(labels []string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(labels)))
	for _, l := range labels {
		b = binary.AppendUvarint(b, uint64(len(l)))
		b = append(b, l...)
	}
	return b
}

func decodePeerSet(b []byte) ([]string, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errShort
	}
	b = b[k:]
	out := make([]string, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, errShort
		}
		out = append(out, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	return out, nil
}

// peerSets reads the peer sets a plan compares with, each once, and keeps
// the differences it rendered, so that N consumers of one aggregate share
// one comparison.
type peerSets struct {
	ctx        context.Context
	st         store.Store
	deployment string
	sets       map[string][]string // nil: not recorded (or unreadable)
	diffs      map[diffKey]peerDiff
}

type diffKey struct {
	agg int32
	was string
}

type peerDiff struct {
	add, del []string
}

func newPeerSets(ctx context.Context, st store.Store, deployment string) *peerSets {
	return &peerSets{ctx: ctx, st: st, deployment: deployment, sets: map[string][]string{}, diffs: map[diffKey]peerDiff{}}
}

func (ps *peerSets) load(ref string) []string {
	if s, ok := ps.sets[ref]; ok {
		return s
	}
	var labels []string
	if ps.st != nil {
		if ent, err := ps.st.Get(ps.ctx, peerSetKey(ps.deployment, ref)); err == nil {
			labels, _ = decodePeerSet(ent.Value)
		}
	}
	ps.sets[ref] = labels
	return labels
}

// peersChanged compares the producers of every All input of nr with the
// ones its last successful run saw: "input Peers changed: +n4 -n2".
func (g *dag) peersChanged(nr *nodeRole, last *success) ([]string, string) {
	var changed, parts []string
	for _, pi := range nr.peers {
		agg := g.aggs[pi.agg]
		was := last.Peers[pi.field]
		var d peerDiff
		switch {
		case len(was) == 1 && was[0] == agg.ref:
			continue // the same peers
		case len(was) == 1 && strings.HasPrefix(was[0], peerSetPrefix):
			k := diffKey{pi.agg, was[0]}
			var ok bool
			if d, ok = g.peerSets.diffs[k]; !ok {
				prev := g.peerSets.load(was[0])
				if prev == nil {
					// The set is gone: the field's digest says whether it
					// changed, without naming peers.
					continue
				}
				d.add, d.del = diffSorted(agg.labels, prev)
				g.peerSets.diffs[k] = d
			}
		default: // a record from before peer sets: the list itself
			d.add, d.del = diffSorted(agg.labels, was)
		}
		if len(d.add) == 0 && len(d.del) == 0 {
			continue
		}
		var b strings.Builder
		b.WriteString("input " + pi.field + " changed:")
		for _, a := range d.add {
			b.WriteString(" +" + a)
		}
		for _, r := range d.del {
			b.WriteString(" -" + r)
		}
		changed = append(changed, pi.field)
		parts = append(parts, b.String())
	}
	return changed, strings.Join(parts, "; ")
}

// writePeerSets stores the peer sets that the node-roles about to run
// will refer to, those the store does not have yet, before any record
// refers to them.
func writePeerSets(ctx context.Context, p *Plan) error {
	g := p.g
	var ops []store.Op
	seen := map[string]bool{}
	for _, agg := range g.aggs {
		if seen[agg.ref] || !agg.anyRuns(p.Steps) {
			continue
		}
		seen[agg.ref] = true
		key := peerSetKey(p.Deployment, agg.ref)
		if _, err := p.st.Get(ctx, key); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("graph: reading peer set %s: %w", key, err)
		}
		ops = append(ops, store.PutOp(key, encodePeerSet(agg.labels)))
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := p.st.Txn(ctx, ops...); err != nil {
		return fmt.Errorf("graph: writing the peer sets of %s: %w", p.Deployment, err)
	}
	return nil
}

// anyRuns reports whether some consumer of agg may run.
func (agg *aggregate) anyRuns(steps []Step) bool {
	for _, c := range agg.consumers {
		if a := steps[c].Action; a == ActionRun || a == ActionRunIfChanged {
			return true
		}
	}
	return false
}

// collectPeerSets deletes the peer sets no node-role's last success
// refers to any more, once an Apply in which consumers of aggregates ran
// is journaled: each membership change leaves one set behind otherwise.
// With a Controller it leaves them: another controller may be about to
// refer to a set it just wrote. (A set deleted while a node-role of a
// removed node still referred to it only makes that node-role's reason,
// should the node return, say less: its input digest still decides.)
func (e *executor) collectPeerSets() error {
	if e.o.ctl != nil || len(e.p.g.aggs) == 0 {
		return nil
	}
	ran := false
	for _, agg := range e.p.g.aggs {
		for _, c := range agg.consumers {
			ran = ran || e.outc[c].State == StateSucceeded
		}
	}
	if !ran {
		return nil
	}
	keep := map[string]bool{}
	for _, l := range e.last {
		if l == nil {
			continue
		}
		for _, ps := range l.Peers {
			if len(ps) == 1 && strings.HasPrefix(ps[0], peerSetPrefix) {
				keep[peerSetKey(e.p.Deployment, ps[0])] = true
			}
		}
	}
	ctx := context.WithoutCancel(e.ctx)
	prefix := peerSetKey(e.p.Deployment, "")
	ents, _, err := e.p.st.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("graph: listing the peer sets of %s: %w", e.p.Deployment, err)
	}
	var ops []store.Op
	for _, ent := range ents {
		if !keep[ent.Key] {
			ops = append(ops, store.DeleteOp(ent.Key))
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := e.p.st.Txn(ctx, ops...); err != nil {
		return fmt.Errorf("graph: deleting unused peer sets of %s: %w", e.p.Deployment, err)
	}
	return nil
}
