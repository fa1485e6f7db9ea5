package graph_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/bolt"
)

type foundersIn struct {
	Token string `attr:"once.token"`
}

type foundersOut struct{ Token string }

// A Once role interrupted by a crash is run again on the next apply, not
// held (it touched nothing outside mason); once it has succeeded a changed
// input does not re-run it, and the plan says why in its own words.
func TestOnceRoleInterruptedRunsAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)

	f := newFakes()
	f.startedC = make(chan string, 10)
	gate := make(chan struct{})
	f.gate["founders@n1"] = gate // a cluster role runs on one of its nodes
	founders := role.Func(role.Meta{Name: "founders", Scope: role.ScopeCluster, Once: true},
		func(ctx context.Context, rc *role.Context, in foundersIn) (foundersOut, error) {
			return foundersOut{Token: in.Token}, f.hook(ctx, rc)
		})
	token := attr.New[string]("once.token")
	build := func(tok string) *graph.Deployment {
		d := graph.NewDeployment("once")
		d.Bind(d.Pool("all", nodes("n1")...), role.Of(founders))
		graph.Set(d, token, tok)
		return d
	}

	p, err := graph.NewPlan(context.Background(), build("t1"), st)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := graph.Apply(context.Background(), p, graph.Options{})
		done <- err
	}()
	require.Equal(t, "founders@n1", <-f.startedC)
	require.Eventually(t, func() bool { return journalState(t, st, "once", "founders@n1") == graph.StateRunning },
		5*time.Second, time.Millisecond)
	crashed, err := os.ReadFile(path) // the file as a process killed mid-run leaves it
	require.NoError(t, err)
	close(gate)
	require.NoError(t, <-done)
	require.NoError(t, st.Close())

	crashPath := filepath.Join(dir, "crashed.db")
	require.NoError(t, os.WriteFile(crashPath, crashed, 0o600))
	st2, err := bolt.Open(crashPath, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st2.Close() })

	p2, err := graph.NewPlan(context.Background(), build("t1"), st2)
	require.NoError(t, err)
	s, ok := p2.Step("founders@n1")
	require.True(t, ok)
	require.Equal(t, graph.ActionRun, s.Action, s.Reason)
	require.Equal(t, graph.ReasonInterrupted, s.Why)
	require.Zero(t, p2.Count(graph.ActionHold))
	res, err := graph.Apply(context.Background(), p2, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, graph.StateSucceeded, state(t, res, "founders@n1").State)
	require.Equal(t, 2, f.count("founders@n1"), "run again after the crash, without force")

	// Succeeded: a changed input does not re-run it.
	p3, err := graph.NewPlan(context.Background(), build("t2"), st2)
	require.NoError(t, err)
	s, _ = p3.Step("founders@n1")
	require.Equal(t, graph.ActionSkip, s.Action)
	require.Equal(t, graph.ReasonDestructiveDone, s.Why)
	require.Equal(t, "runs once and already succeeded; not re-run although input Token changed; force it to run again", s.Reason)
}
