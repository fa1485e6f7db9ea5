package progress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
)

// clock is a fake time source the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func newTest(mode Mode, opts Options) (*Display, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	opts.Mode = mode
	d := New(&buf, opts)
	c := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	d.now, d.manual = c.now, true
	return d, &buf, c
}

func ev(t time.Time, id string, st graph.State, mods ...func(*graph.Event)) graph.Event {
	r, n, _ := strings.Cut(id, "@")
	e := graph.Event{Time: t, Deployment: "web", ID: id, Role: r, Node: n, State: st}
	for _, m := range mods {
		m(&e)
	}
	return e
}

func attempt(n int) func(*graph.Event)        { return func(e *graph.Event) { e.Attempt = n } }
func took(d time.Duration) func(*graph.Event) { return func(e *graph.Event) { e.Duration = d } }
func failed(msg string) func(*graph.Event)    { return func(e *graph.Event) { e.Err = errors.New(msg) } }
func reason(r string) func(*graph.Event)      { return func(e *graph.Event) { e.Reason = r } }
func blockedBy(id string) func(*graph.Event)  { return func(e *graph.Event) { e.BlockedBy = id } }

func TestLinesOneLinePerChangeNoPendingSpam(t *testing.T) {
	d, buf, c := newTest(Lines, Options{})
	ctx := context.Background()
	t0 := c.t
	d.Handle(ctx, ev(t0, "ca", graph.StateSkipped, reason("converged")))
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		d.Handle(ctx, ev(t0, "serve@"+n, graph.StatePending, reason("new")))
	}
	d.Handle(ctx, ev(t0, "check", graph.StatePending, reason("new")))
	d.Handle(ctx, ev(c.add(100*time.Millisecond), "serve@web-1", graph.StateRunning, attempt(1), reason("new")))
	d.Handle(ctx, ev(c.t, "serve@web-2", graph.StateRunning, attempt(1), reason("new")))
	d.Handle(ctx, ev(c.add(time.Second), "serve@web-1", graph.StateSucceeded, attempt(1), took(time.Second)))
	d.Handle(ctx, ev(c.add(time.Second), "serve@web-2", graph.StateRetrying, attempt(1), failed("connection refused"), reason("attempt 1 failed; next in 1s")))
	d.Handle(ctx, ev(c.t, "serve@web-3", graph.StateRunning, attempt(1), reason("new")))
	d.Handle(ctx, ev(c.add(time.Second), "serve@web-2", graph.StateRunning, attempt(2)))
	d.Handle(ctx, ev(c.add(time.Second), "serve@web-2", graph.StateFailed, attempt(2), took(3*time.Second), failed("disk full\non web-2")))
	d.Handle(ctx, ev(c.t, "check", graph.StateBlocked, blockedBy("serve@web-2"), reason("blocked by serve@web-2: disk full")))
	// Nothing finished for 25 s: the summary comes every 10 s, no more often.
	for range 25 {
		c.add(time.Second)
		d.tick()
	}
	d.Handle(ctx, ev(c.add(500*time.Millisecond), "serve@web-3", graph.StateSucceeded, attempt(1), took(29*time.Second)))
	require.NoError(t, d.Close())

	require.Equal(t, `[   0.1s] start   serve@web-1: new
[   0.1s] start   serve@web-2: new
[   1.1s] done    serve@web-1 in 1.0s
[   2.1s] retry   serve@web-2: connection refused (attempt 1 failed; next in 1s)
[   2.1s] start   serve@web-3: new
[   3.1s] start   serve@web-2 (attempt 2)
[   4.1s] FAILED  serve@web-2 after 2 attempts in 3.0s: disk full on web-2
[   4.1s] blocked check: blocked by serve@web-2
[  14.1s] 4 of 5 done (1 succeeded, 1 failed, 1 blocked, 1 unchanged), 1 running; running serve@web-3 12s; slowest serve@web-2 3.0s
[  24.1s] 4 of 5 done (1 succeeded, 1 failed, 1 blocked, 1 unchanged), 1 running; running serve@web-3 22s; slowest serve@web-2 3.0s
[  29.6s] done    serve@web-3 in 29s
[  29.6s] 5 of 5 done (2 succeeded, 1 failed, 1 blocked, 1 unchanged); slowest serve@web-3 29s
`, buf.String())
	require.NotContains(t, buf.String(), "pending")
}

func TestLinesConvergedRunIsOneLine(t *testing.T) {
	d, buf, c := newTest(Lines, Options{})
	for i := range 13 {
		d.Handle(context.Background(), ev(c.t, fmt.Sprintf("r@n%d", i), graph.StateSkipped, reason("converged")))
	}
	require.NoError(t, d.Close())
	require.Equal(t, "[   0.0s] 13 of 13 done (13 unchanged)\n", buf.String())
}

func TestCloseWithoutEventsSaysNothing(t *testing.T) {
	for _, m := range []Mode{Lines, Live} {
		d, buf, _ := newTest(m, Options{})
		require.NoError(t, d.Close())
		require.NoError(t, d.Close())
		require.Empty(t, buf.String())
	}
}

func TestLiveRedrawsInPlaceAndKeepsFailures(t *testing.T) {
	d, buf, c := newTest(Live, Options{Width: 60, Height: 10})
	ctx := context.Background()
	t0 := c.t
	for i := 1; i <= 12; i++ {
		d.Handle(ctx, ev(t0, fmt.Sprintf("serve@web-%d", i), graph.StatePending))
	}
	d.Handle(ctx, ev(t0, "check", graph.StatePending))
	for i := 1; i <= 12; i++ {
		d.Handle(ctx, ev(c.add(100*time.Millisecond), fmt.Sprintf("serve@web-%d", i), graph.StateRunning, attempt(1)))
	}
	c.add(2 * time.Second)
	d.tick()
	first := buf.String()
	require.True(t, strings.HasPrefix(first, "\x1b[J"), "the first frame clears below the cursor: %q", first)
	frame := strings.Split(strings.TrimSuffix(strings.TrimPrefix(first, "\x1b[J"), "\n"), "\n")
	require.Len(t, frame, 9, "the area fits the terminal's height less one")
	require.Equal(t, "web: running 3.2s · 0 of 13 done, 12 running, 1 waiting", frame[0])
	require.Equal(t, "  running   serve@web-1    3.1s", frame[1], "longest running first")
	require.Equal(t, "  … and 5 more running", frame[8])

	// Eight of them fail the same way: one line for all, kept on screen.
	buf.Reset()
	for i := 1; i <= 8; i++ {
		n := fmt.Sprintf("web-%d", i)
		d.Handle(ctx, ev(c.add(10*time.Millisecond), "serve@"+n, graph.StateFailed, attempt(3), took(time.Second), failed("port 80 in use on "+n)))
	}
	d.Handle(ctx, ev(c.t, "check", graph.StateBlocked, blockedBy("serve@web-1")))
	d.Handle(ctx, ev(c.add(time.Second), "serve@web-9", graph.StateSucceeded, attempt(1), took(4*time.Second)))
	d.tick()
	second := buf.String()
	require.True(t, strings.HasPrefix(second, "\r\x1b[9A\x1b[J"), "the next frame goes back over the last one: %q", second)
	frame = strings.Split(strings.TrimSuffix(strings.TrimPrefix(second, "\r\x1b[9A\x1b[J"), "\n"), "\n")
	require.Equal(t, []string{
		"web: running 4.3s · 10 of 13 done (1 succeeded, 8 failed, …",
		"  running   serve@web-10   3.3s",
		"  running   serve@web-11   3.2s",
		"  running   serve@web-12   3.1s",
		"  slowest   serve@web-9 4.0s",
		"  FAILED    serve on web-1 … web-8 (8 nodes): port 80 in u…",
		"  blocked   check: blocked by serve@web-1",
	}, frame)

	buf.Reset()
	require.NoError(t, d.Close())
	last := buf.String()
	require.Contains(t, last, "web: finished 4.3s · 10 of 13 done")
	require.Contains(t, last, "FAILED    serve on web-1 … web-8 (8 nodes)")
}

// Many events in a short time: Lines mode writes one line per change and
// the summary at most once per Summary interval.
func TestLinesRate(t *testing.T) {
	d, buf, c := newTest(Lines, Options{Summary: 10 * time.Second})
	ctx := context.Background()
	for i := range 1000 {
		d.Handle(ctx, ev(c.t, fmt.Sprintf("r@n%d", i), graph.StatePending))
	}
	for i := range 1000 {
		id := fmt.Sprintf("r@n%d", i)
		d.Handle(ctx, ev(c.add(time.Millisecond), id, graph.StateRunning, attempt(1)))
		d.Handle(ctx, ev(c.add(time.Millisecond), id, graph.StateSucceeded, attempt(1), took(time.Millisecond)))
		d.tick()
	}
	require.NoError(t, d.Close())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2001, "a start and a done per node-role, and the last summary")
	require.Equal(t, "[   2.0s] 1000 of 1000 done (1000 succeeded); slowest r@n0 0.0s", lines[2000])
}

func noting(msg string) func(*graph.Event) { return func(e *graph.Event) { e.Progress = msg } }

// A role's own progress reports show beside it: in the live area on its
// running line, in Lines mode as a line (at most one per node-role every
// few seconds; the latest in the summary), and never as a transition.
func TestRoleProgressShows(t *testing.T) {
	ctx := context.Background()

	d, buf, c := newTest(Live, Options{Width: 80, Height: 10})
	t0 := c.t
	d.Handle(ctx, ev(t0, "wait-ready", graph.StateRunning, attempt(1)))
	d.Handle(ctx, ev(c.add(time.Second), "wait-ready", graph.StateRunning, attempt(1), noting("waiting for 3/5 nodes Ready")))
	c.add(time.Second)
	d.tick()
	frame := strings.Split(strings.TrimSuffix(strings.TrimPrefix(buf.String(), "\x1b[J"), "\n"), "\n")
	require.Equal(t, []string{
		"web: running 2.0s · 0 of 1 done, 1 running",
		"  running   wait-ready   2.0s  waiting for 3/5 nodes Ready",
	}, frame)
	d.Handle(ctx, ev(c.add(time.Second), "wait-ready", graph.StateSucceeded, attempt(1), took(3*time.Second)))
	buf.Reset()
	require.NoError(t, d.Close())
	require.NotContains(t, buf.String(), "waiting for", "a finished role's report is gone")

	d, buf, c = newTest(Lines, Options{Summary: 10 * time.Second})
	t0 = c.t
	d.Handle(ctx, ev(t0, "wait-ready", graph.StateRunning, attempt(1)))
	d.Handle(ctx, ev(c.add(time.Second), "wait-ready", graph.StateRunning, attempt(1), noting("waiting for 1/5 nodes Ready")))
	d.Handle(ctx, ev(c.add(time.Second), "wait-ready", graph.StateRunning, attempt(1), noting("waiting for 2/5 nodes Ready")))
	d.Handle(ctx, ev(c.add(time.Second), "wait-ready", graph.StateRunning, attempt(1), noting("waiting for 3/5 nodes Ready")))
	d.tick() // less than 5 s since the last progress line: nothing
	c.add(3 * time.Second)
	d.tick() // now the latest one
	c.add(10 * time.Second)
	d.tick() // the summary, with the report
	d.Handle(ctx, ev(c.add(time.Second), "wait-ready", graph.StateSucceeded, attempt(1), took(17*time.Second)))
	require.NoError(t, d.Close())
	require.Equal(t, strings.Join([]string{
		"[   0.0s] start   wait-ready",
		"[   1.0s] running wait-ready 1.0s: waiting for 1/5 nodes Ready",
		"[   6.0s] running wait-ready 6.0s: waiting for 3/5 nodes Ready",
		"[  16.0s] 0 of 1 done, 1 running; running wait-ready 16s (waiting for 3/5 nodes Ready)",
		"[  17.0s] done    wait-ready in 17s",
		"[  17.0s] 1 of 1 done (1 succeeded); slowest wait-ready 17s",
	}, "\n")+"\n", buf.String())
}
