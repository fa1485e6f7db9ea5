package graph_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
)

// A role's progress reports arrive as events with Progress set, in
// order, repeats dropped, between its running and its final transition;
// JSONLines writes them too.
func TestRoleProgressIsAnEvent(t *testing.T) {
	wait := role.Func(role.Meta{Name: "wait-ready"}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) {
		for ready := 1; ready <= 3; ready++ {
			rc.Progress("waiting for %d/3 nodes Ready", ready)
			rc.Progress("waiting for %d/3 nodes Ready", ready) // a repeat: dropped
		}
		return struct{}{}, nil
	})
	d := graph.NewDeployment("prog")
	d.Bind(d.Pool("p", nodes("n1")...), role.Of(wait))
	var mu sync.Mutex
	var seen []string
	var jbuf bytes.Buffer
	sub := graph.SubscriberFunc(func(ctx context.Context, e graph.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Progress != "" {
			require.Equal(t, graph.StateRunning, e.State)
			require.Equal(t, "wait-ready@n1", e.ID)
			seen = append(seen, e.Progress)
			return
		}
		seen = append(seen, e.State.String())
	})
	_, _, err := planApply(t, d, memStore(t), graph.Options{Events: graph.Subscribers(sub, graph.JSONLines(&jbuf))})
	require.NoError(t, err)
	require.Equal(t, []string{"pending", "running", "waiting for 1/3 nodes Ready", "waiting for 2/3 nodes Ready", "waiting for 3/3 nodes Ready", "succeeded"}, seen)
	require.Contains(t, jbuf.String(), `"state":"running","attempt":1,"progress":"waiting for 2/3 nodes Ready"`)

	// Run directly, with no one listening, it reports nothing and does not
	// fail.
	rc := role.NewContext(role.ContextOptions{Role: "wait-ready"})
	rc.Progress("nobody hears this")
}
