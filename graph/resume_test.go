package graph_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
)

type WipeOut struct{ Done bool }

// journalState reads the state journaled for id.
func journalState(t *testing.T, st store.Store, dep, id string) graph.State {
	t.Helper()
	es, err := graph.ReadJournal(context.Background(), st, dep)
	require.NoError(t, err)
	for _, e := range es {
		if e.ID == id {
			return e.State
		}
	}
	return 0
}

// A crash is simulated by copying the bbolt file while the executor is in
// the middle of a run — the file as a killed process would leave it — and
// resuming from the copy with a new executor.
func TestResumeAfterCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)

	f := newFakes()
	f.startedC = make(chan string, 100)
	gate := make(chan struct{})
	names := nodeNames(4)
	for _, n := range names {
		f.gate["c@"+n] = gate
	}
	f.gate["wipe@n1"] = gate
	wipe := role.Func(role.Meta{Name: "wipe", Destructive: true, Requires: []string{"a"}},
		func(ctx context.Context, rc *role.Context, _ struct{}) (WipeOut, error) {
			return WipeOut{Done: true}, f.hook(ctx, rc)
		})
	build := func() *graph.Deployment {
		d := graph.NewDeployment("crash")
		p := chain(f, d, names...)
		d.Bind(d.Pool("first", d.Node(p.Nodes()[0])), role.Of(wipe))
		return d
	}
	p, err := graph.NewPlan(context.Background(), build(), st)
	require.NoError(t, err)
	done := make(chan error)
	go func() {
		_, err := graph.Apply(context.Background(), p, graph.Options{Parallelism: 8, PerNode: 3}) // n1 holds c, wipe and agg at once
		done <- err
	}()
	// Wait until every gated node-role runs and everything else settled.
	running := map[string]bool{}
	for len(running) < 5 {
		id := <-f.startedC
		if f.gate[id] != nil {
			running[id] = true
		}
	}
	require.Eventually(t, func() bool {
		for id := range running {
			if journalState(t, st, "crash", id) != graph.StateRunning {
				return false
			}
		}
		return journalState(t, st, "crash", "agg@n1") == graph.StateSucceeded
	}, 5*time.Second, time.Millisecond)
	crashed, err := os.ReadFile(path)
	require.NoError(t, err)
	close(gate)
	require.NoError(t, <-done)
	require.NoError(t, st.Close())

	// Resume from the crashed state file.
	crashPath := filepath.Join(dir, "crashed.db")
	require.NoError(t, os.WriteFile(crashPath, crashed, 0o600))
	st2, err := bolt.Open(crashPath, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st2.Close() })
	before := map[string]int{}
	for k, v := range f.runs {
		before[k] = v
	}
	p2, err := graph.NewPlan(context.Background(), build(), st2)
	require.NoError(t, err)
	for _, s := range p2.Steps {
		switch {
		case s.ID == "wipe@n1":
			require.Equal(t, graph.ActionHold, s.Action)
			require.Equal(t, graph.ReasonHeldDestructive, s.Why)
			require.Contains(t, s.Reason, "destructive role was interrupted while running")
		case s.Role == "c":
			require.Equal(t, graph.ActionRun, s.Action, s.ID)
			require.Equal(t, graph.ReasonInterrupted, s.Why, s.ID)
			require.Equal(t, "interrupted while running; runs again", s.Reason)
		default:
			require.Equal(t, graph.ActionSkip, s.Action, "%s: %s", s.ID, s.Reason)
		}
	}
	res, err := graph.Apply(context.Background(), p2, graph.Options{})
	require.Error(t, err, "the held destructive role is reported")
	require.Equal(t, graph.StateFailed, state(t, res, "wipe@n1").State)
	ran := map[string]int{}
	for k, v := range f.runs {
		if v > before[k] {
			ran[k] = v - before[k]
		}
	}
	require.Equal(t, map[string]int{"c@n1": 1, "c@n2": 1, "c@n3": 1, "c@n4": 1}, ran, "only the unfinished work ran")

	// Still held until forced.
	p3, err := graph.NewPlan(context.Background(), build(), st2)
	require.NoError(t, err)
	require.Equal(t, 1, p3.Count(graph.ActionHold))
	p3, err = graph.NewPlan(context.Background(), build(), st2, graph.Force("wipe@n1"))
	require.NoError(t, err)
	s, _ := p3.Step("wipe@n1")
	require.Equal(t, graph.ActionRun, s.Action)
	_, err = graph.Apply(context.Background(), p3, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, before["wipe@n1"]+1, f.count("wipe@n1"))

	// Converged now, and a changed input never re-runs a destructive role.
	p4, err := graph.NewPlan(context.Background(), build(), st2)
	require.NoError(t, err)
	require.Equal(t, len(p4.Steps), p4.Count(graph.ActionSkip), p4.String())
}

// When the store fails, the executor stops starting work and says why;
// what ran but could not be journaled is reported, not silently lost.
func TestJournalFailureStopsTheRun(t *testing.T) {
	f := newFakes()
	f.startedC = make(chan string, 100)
	gate := make(chan struct{})
	f.gate["a@n1"] = gate
	d := graph.NewDeployment("broken")
	chain(f, d, "n1", "n2")
	st := memStore(t)
	p, err := graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	type out struct {
		res *graph.Result
		err error
	}
	done := make(chan out)
	go func() {
		r, err := graph.Apply(context.Background(), p, graph.Options{Parallelism: 1})
		done <- out{r, err}
	}()
	for id := range f.startedC {
		if id == "a@n1" {
			break
		}
	}
	require.NoError(t, st.Close())
	close(gate)
	o := <-done
	require.ErrorIs(t, o.err, store.ErrClosed)
	require.ErrorContains(t, o.err, "writing journal mason/graph/broken/nr/")
	a := state(t, o.res, "a@n1")
	require.Equal(t, graph.StateFailed, a.State)
	require.ErrorContains(t, a.Err, "could not be journaled")
	require.Equal(t, graph.StatePending, state(t, o.res, "b@n1").State, "nothing starts after the journal failed")
}

// A node-role the journal has never seen gets its first record when it
// starts: until then the journal has nothing for it, and a crash leaves
// it "never run". One the journal knows is journaled pending at once, so
// that the journal stops saying it is done while it waits to run again.
func TestPendingRecordsOnlyForKnownNodeRoles(t *testing.T) {
	st := memStore(t)
	f := newFakes()
	f.startedC = make(chan string, 100)
	gate := make(chan struct{})
	f.gate["a@n1"] = gate
	build := func() *graph.Deployment {
		d := graph.NewDeployment("pend")
		chain(f, d, "n1")
		return d
	}
	entries := func() map[string]graph.State {
		es, err := graph.ReadJournal(context.Background(), st, "pend")
		require.NoError(t, err)
		m := map[string]graph.State{}
		for _, e := range es {
			m[e.ID] = e.State
		}
		return m
	}
	applyGated := func(p *graph.Plan) (seen map[string]graph.State) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := graph.Apply(context.Background(), p, graph.Options{})
			done <- err
		}()
		require.Equal(t, "a@n1", <-f.startedC)
		require.Eventually(t, func() bool { return entries()["a@n1"] == graph.StateRunning }, 5*time.Second, time.Millisecond)
		seen = entries()
		close(gate)
		require.NoError(t, <-done)
		for len(f.startedC) > 0 { // what started after a@n1
			<-f.startedC
		}
		return seen
	}

	// First apply: only the running a@n1 is in the journal.
	p, err := graph.NewPlan(context.Background(), build(), st)
	require.NoError(t, err)
	require.Equal(t, map[string]graph.State{"a@n1": graph.StateRunning}, applyGated(p))
	for _, id := range []string{"a@n1", "b@n1", "c@n1", "agg@n1"} {
		require.Equal(t, graph.StateSucceeded, entries()[id], id)
	}

	// Forced again, what waits for a@n1 is journaled pending, with the
	// reason it runs, before a@n1 ends.
	gate = make(chan struct{})
	f.mu.Lock()
	f.gate["a@n1"] = gate
	f.mu.Unlock()
	p, err = graph.NewPlan(context.Background(), build(), st, graph.ForceAll())
	require.NoError(t, err)
	seen := applyGated(p)
	require.Equal(t, map[string]graph.State{"a@n1": graph.StateRunning, "b@n1": graph.StatePending, "c@n1": graph.StatePending, "agg@n1": graph.StatePending}, seen)
	es, err := graph.ReadJournal(context.Background(), st, "pend")
	require.NoError(t, err)
	for _, e := range es {
		require.Equal(t, graph.StateSucceeded, e.State, e.ID)
	}
}
