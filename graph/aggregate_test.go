package graph

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

// Roles of the aggregate tests: addr on every node (its output depends on
// the node's attribute ap.suffix), view on every node taking All of every
// addr, total once for the cluster taking the same, and local on every
// node taking only its own node's addr (Same): not a consumer of the
// aggregate.
type (
	apAddr  struct{ Addr string }
	apView  struct{ Peers []string }
	apTotal struct{ Members []string }
	apLocal struct{ Addr string }
)

// apRecorder keeps what the consumers were given.
type apRecorder struct {
	mu    sync.Mutex
	views map[string]role.All[apAddr] // by node
	total role.All[apAddr]
	runs  map[string]int // by node-role
}

func (r *apRecorder) ran(rc *role.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := rc.Role()
	if rc.Node() != nil {
		id += "@" + rc.Node().Name
	}
	r.runs[id]++
}

func apDeployment(nodes int, rec *apRecorder) *Deployment {
	addr := role.Func(role.Meta{Name: "addr"}, func(ctx context.Context, rc *role.Context, in struct {
		Suffix string `attr:"ap.suffix,optional"`
	}) (apAddr, error) {
		rec.ran(rc)
		return apAddr{Addr: "10.0.0." + rc.Node().Name + in.Suffix}, nil
	})
	view := role.Func(role.Meta{Name: "view"}, func(ctx context.Context, rc *role.Context, in struct {
		Peers role.All[apAddr]
	}) (apView, error) {
		rec.ran(rc)
		rec.mu.Lock()
		rec.views[rc.Node().Name] = in.Peers
		rec.mu.Unlock()
		var out apView
		for _, p := range in.Peers {
			out.Peers = append(out.Peers, p.Value.Addr)
		}
		return out, nil
	})
	total := role.Func(role.Meta{Name: "total", Scope: role.ScopeCluster}, func(ctx context.Context, rc *role.Context, in struct {
		Peers role.All[apAddr]
	}) (apTotal, error) {
		rec.ran(rc)
		rec.mu.Lock()
		rec.total = in.Peers
		rec.mu.Unlock()
		return apTotal{Members: in.Peers.Nodes()}, nil
	})
	local := role.Func(role.Meta{Name: "local"}, func(ctx context.Context, rc *role.Context, in struct {
		Self role.Same[apAddr]
	}) (apLocal, error) {
		rec.ran(rc)
		return apLocal{Addr: in.Self.Value.Addr}, nil
	})
	d := NewDeployment("ap")
	p := d.Pool("all")
	// Added out of order: All is sorted by node whatever the pool's order.
	for i := nodes - 1; i >= 0; i-- {
		p.Add(&provider.Node{Name: fmt.Sprintf("n%d", i+1)})
	}
	d.Bind(p, role.Of(addr), role.Of(view), role.Of(total), role.Of(local))
	return d
}

func newAPRecorder() *apRecorder {
	return &apRecorder{views: map[string]role.All[apAddr]{}, runs: map[string]int{}}
}

func apApply(t *testing.T, d *Deployment, st store.Store) (*Plan, *Result) {
	t.Helper()
	p, err := NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	res, err := Apply(context.Background(), p, Options{Parallelism: 4})
	require.NoError(t, err)
	return p, res
}

// Every consumer gets the same value it got when each built its own: the
// peers in node order, each with its node, role and output; they share
// one slice; provenance names every peer; the digest is the one
// DigestInputs computes of the whole input.
func TestAggregateSharedValue(t *testing.T) {
	rec := newAPRecorder()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	p, res := apApply(t, apDeployment(4, rec), st)
	require.Equal(t, 4*3+1, res.Count(StateSucceeded))

	want := role.All[apAddr]{
		{Node: "n1", Role: "addr", Value: apAddr{"10.0.0.n1"}},
		{Node: "n2", Role: "addr", Value: apAddr{"10.0.0.n2"}},
		{Node: "n3", Role: "addr", Value: apAddr{"10.0.0.n3"}},
		{Node: "n4", Role: "addr", Value: apAddr{"10.0.0.n4"}},
	}
	require.Len(t, rec.views, 4)
	for node, got := range rec.views {
		require.Equal(t, want, got, "view@%s", node)
		require.Same(t, &rec.views["n1"][0], &got[0], "view@%s has a copy of its own", node)
	}
	require.Equal(t, want, rec.total)
	require.Same(t, &rec.views["n1"][0], &rec.total[0], "the cluster role has a copy of its own")

	// One aggregate for the 5 consumers, waited for as one vertex.
	require.Len(t, p.g.aggs, 1)
	require.Len(t, p.g.aggs[0].consumers, 5)
	st3, _ := p.Step("view@n3")
	require.Equal(t, []string{"addr@n1", "addr@n2", "addr@n3", "addr@n4"}, sortedCopy(st3.WaitsFor))

	// A converged plan: provenance per peer, from the journal.
	p2, err := NewPlan(context.Background(), apDeployment(4, rec), st)
	require.NoError(t, err)
	require.Equal(t, len(p2.Steps), p2.Count(ActionSkip), p2.String())
	bs, err := p2.BindingsOf("view@n2")
	require.NoError(t, err)
	require.Equal(t, "Peers <- output of addr on n1, output of addr on n2, output of addr on n3, output of addr on n4", bs[0].String())

	// The digest journaled is DigestInputs' of the whole input, as a role
	// binding its own copy would compute it.
	var def *role.Def
	for _, nr := range p2.g.nrs {
		if nr.id == "view@n2" {
			def = nr.def
		}
	}
	in, _, err := def.Bind(role.Env{Node: "n2", Outputs: apOutputs(want)})
	require.NoError(t, err)
	dg, fields, err := def.DigestInputs(in)
	require.NoError(t, err)
	ents, err := ReadJournal(context.Background(), st, "ap")
	require.NoError(t, err)
	for _, e := range ents {
		if e.ID == "view@n2" {
			require.Equal(t, dg, e.Digest)
		}
	}
	known := map[string]string{"Peers": fields["Peers"]}
	dg2, fields2, err := def.DigestInputsShared(in, known)
	require.NoError(t, err)
	require.Equal(t, dg, dg2)
	require.Equal(t, fields, fields2)
}

func apOutputs(a role.All[apAddr]) []role.Output {
	var out []role.Output
	for _, p := range a {
		out = append(out, role.Output{Role: p.Role, Node: p.Node, Value: p.Value})
	}
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A change in one peer re-runs its node's roles that read it and every
// consumer of the aggregate, nothing else; a new node re-runs every
// consumer, each saying which peer came ("input Peers changed: +n5").
func TestAggregateChangeReruns(t *testing.T) {
	rec := newAPRecorder()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	apApply(t, apDeployment(4, rec), st)

	rec.runs = map[string]int{}
	d := apDeployment(4, rec)
	require.NoError(t, d.NodeAttrs("n2").SetAny("ap.suffix", "-b", attr.Source{Layer: attr.LayerNode, Detail: "test"}))
	_, res := apApply(t, d, st)
	require.Equal(t, map[string]int{"addr@n2": 1, "local@n2": 1, "view@n1": 1, "view@n2": 1, "view@n3": 1, "view@n4": 1, "total@n1": 1}, rec.runs)
	o, _ := res.Outcome("view@n3")
	require.Equal(t, ReasonInputChanged, o.Why, o.Reason)
	o, _ = res.Outcome("local@n3")
	require.Equal(t, StateSkipped, o.State)
	require.Equal(t, "10.0.0.n2-b", rec.views["n4"][1].Value.Addr)

	// One node more.
	rec.runs = map[string]int{}
	d = apDeployment(5, rec)
	require.NoError(t, d.NodeAttrs("n2").SetAny("ap.suffix", "-b", attr.Source{Layer: attr.LayerNode, Detail: "test"}))
	p, err := NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	for _, id := range []string{"view@n1", "view@n4", "total@n1"} {
		s, _ := p.Step(id)
		require.Equal(t, ActionRun, s.Action, id)
		require.Equal(t, "input Peers changed: +n5", s.Reason, id)
	}
	res, err = Apply(context.Background(), p, Options{Parallelism: 4})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"addr@n5": 1, "local@n5": 1, "view@n1": 1, "view@n2": 1, "view@n3": 1, "view@n4": 1, "view@n5": 1, "total@n1": 1}, rec.runs)
	require.Equal(t, []string{"n1", "n2", "n3", "n4", "n5"}, rec.total.Nodes())

	// And one less: "-n5", from the peer set journaled once.
	p, err = NewPlan(context.Background(), apDeployment(4, rec), st)
	require.NoError(t, err)
	s, _ := p.Step("view@n3")
	require.Contains(t, s.Reason, "input Peers changed: -n5")
	ents, _, err := st.List(context.Background(), "mason/graph/ap/peers/")
	require.NoError(t, err)
	require.Len(t, ents, 1, "one peer set per membership, not one per consumer; those no record refers to are deleted")
	res, err = Apply(context.Background(), p, Options{Parallelism: 4})
	require.NoError(t, err)
	ents, _, err = st.List(context.Background(), "mason/graph/ap/peers/")
	require.NoError(t, err)
	require.Len(t, ents, 1)
	p, err = NewPlan(context.Background(), apDeployment(5, rec), st)
	require.NoError(t, err)
	s, _ = p.Step("view@n3")
	require.Equal(t, "input Peers changed: +n5", s.Reason)
}

// testdata/journal-v1-allpeers.db is a bbolt state written by mason before
// aggregates were shared (every view's record lists its peers): the
// deployment is converged on it, and a new node is named in the reasons.
func TestAggregateOldJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	copyFile(t, filepath.Join("testdata", "journal-v1-allpeers.db"), path)
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	rec := newAPRecorder()
	p, err := NewPlan(context.Background(), apDeployment(4, rec), st)
	require.NoError(t, err)
	require.Equal(t, len(p.Steps), p.Count(ActionSkip), p.String())

	p, err = NewPlan(context.Background(), apDeployment(5, rec), st)
	require.NoError(t, err)
	s, _ := p.Step("view@n2")
	require.Equal(t, "input Peers changed: +n5", s.Reason)
	res, err := Apply(context.Background(), p, Options{Parallelism: 4})
	require.NoError(t, err)
	require.Equal(t, 5+3, res.Count(StateSucceeded)) // addr, local and view on n5; every other view; total
	require.Len(t, rec.views["n1"], 5)
	p, err = NewPlan(context.Background(), apDeployment(5, rec), st)
	require.NoError(t, err)
	require.Equal(t, len(p.Steps), p.Count(ActionSkip), p.String())
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.Create(to)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

// An optional All nobody produces is nil, as when each consumer bound
// its own; the node-role converges.
func TestAggregateOptionalEmpty(t *testing.T) {
	type nobody struct{ X int }
	var got []bool
	var mu sync.Mutex
	r := role.Func(role.Meta{Name: "lonely"}, func(ctx context.Context, rc *role.Context, in struct {
		Peers role.All[nobody] `optional:"true"`
	}) (apLocal, error) {
		mu.Lock()
		got = append(got, in.Peers == nil)
		mu.Unlock()
		return apLocal{}, nil
	})
	mk := func() *Deployment {
		d := NewDeployment("opt")
		d.Bind(d.Pool("p", &provider.Node{Name: "n1"}, &provider.Node{Name: "n2"}), role.Of(r))
		return d
	}
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	_, res := apApply(t, mk(), st)
	require.Equal(t, 2, res.Count(StateSucceeded))
	require.Equal(t, []bool{true, true}, got)
	p, err := NewPlan(context.Background(), mk(), st)
	require.NoError(t, err)
	require.Equal(t, 2, p.Count(ActionSkip), p.String())
}

// A converged plan decodes journaled outputs with one primed decoder per
// output type, and gets the same values.
func TestPrimedOutputDecoder(t *testing.T) {
	rec := newAPRecorder()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	apApply(t, apDeployment(3, rec), st)
	p, err := NewPlan(context.Background(), apDeployment(3, rec), st)
	require.NoError(t, err)
	pd := p.g.dec.m[reflect.TypeFor[apAddr]()]
	require.NotNil(t, pd)
	require.NotNil(t, pd.dec, "the journal's outputs did not take the primed decoder")
	i := p.g.index["addr@n3"]
	require.Equal(t, apAddr{"10.0.0.n3"}, p.outs[i])
}
