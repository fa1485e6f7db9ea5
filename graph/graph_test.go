package graph_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
)

func TestPlanErrors(t *testing.T) {
	f := newFakes()
	type OneIn struct{ X role.One[AOut] }
	one := role.Func(role.Meta{Name: "one"}, func(ctx context.Context, rc *role.Context, in OneIn) (COut, error) { return COut{}, nil })
	for _, tc := range []struct {
		name  string
		build func(d *graph.Deployment)
		want  []string
	}{
		{"cycle through requires", func(d *graph.Deployment) {
			d.Bind(d.Pool("p", nodes("n1")...), f.roleA(role.Meta{Name: "x", Requires: []string{"y"}}), f.roleB(role.Meta{Name: "y", Requires: []string{"x"}}))
		}, []string{"cycle"}},
		{"missing same-node producer", func(d *graph.Deployment) {
			d.Bind(d.Pool("p", nodes("n1")...), f.roleB(role.Meta{}))
		}, []string{`role "b" on n1: input A (role.Same[graph_test.AOut])`, "no role produced it", "on node n1"}},
		{"ambiguous single producer", func(d *graph.Deployment) {
			d.Bind(d.Pool("p", nodes("n1", "n2")...), f.roleA(role.Meta{}), role.Of(one))
		}, []string{`role "one" on n1: input X (role.One[graph_test.AOut])`, "ambiguous: produced by a@n1, a@n2"}},
		{"unknown requires", func(d *graph.Deployment) {
			d.Bind(d.Pool("p", nodes("n1")...), f.roleA(role.Meta{Requires: []string{"ghost"}}))
		}, []string{`role "a" on node n1 requires role "ghost"`}},
		{"bound twice", func(d *graph.Deployment) {
			p := d.Pool("p", nodes("n1")...)
			d.Bind(p, f.roleA(role.Meta{}))
			d.Bind(p, f.roleA(role.Meta{}))
		}, []string{`role "a" is bound twice to node n1`}},
		// A value that is not a role does not compile (role's
		// TestNonRoleDoesNotCompile); a role of the wrong shape, or no
		// role at all, fails the plan.
		{"malformed role", func(d *graph.Deployment) {
			d.Bind(d.Pool("p", nodes("n1")...), role.Of(role.Func(role.Meta{Name: "m"}, func(ctx context.Context, rc *role.Context, in struct{ Port int }) (COut, error) {
				return COut{}, nil
			})))
		}, []string{"graph: Bind at ", `role "m": input field Port (int) says nowhere where it comes from`}},
		{"nil role", func(d *graph.Deployment) {
			d.Bind(d.Pool("p", nodes("n1")...), nil)
		}, []string{"graph: Bind at ", "nil Def: register roles with role.Of"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := graph.NewDeployment("errs")
			tc.build(d)
			_, err := graph.NewPlan(context.Background(), d, memStore(t))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestCycleMessage(t *testing.T) {
	f := newFakes()
	d := graph.NewDeployment("cyc")
	d.Bind(d.Pool("p", nodes("n1")...),
		f.roleA(role.Meta{Name: "a", Requires: []string{"b"}}),
		f.roleB(role.Meta{Name: "b", Requires: []string{"c"}}),
		f.roleC(role.Meta{Name: "c", Requires: []string{"a"}}))
	_, err := graph.NewPlan(context.Background(), d, memStore(t))
	var ce *graph.CycleError
	require.ErrorAs(t, err, &ce)
	// b also waits for a through its Same[AOut] input: the walk from a@n1
	// meets that shorter cycle first.
	require.Equal(t, []string{"a@n1", "b@n1", "a@n1"}, ce.Path)
	require.Equal(t, "graph: dependency cycle: a@n1 → b@n1 → a@n1 (each waits for the next through Meta.Requires or an input; break one of these dependencies)", err.Error())
}

func TestCyclePathExact(t *testing.T) {
	x := role.Func(role.Meta{Name: "x", Requires: []string{"y"}}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	y := role.Func(role.Meta{Name: "y", Requires: []string{"x"}}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	d := graph.NewDeployment("cyc")
	d.Bind(d.Pool("p", nodes("n1")...), role.Of(x), role.Of(y))
	_, err := graph.NewPlan(context.Background(), d, memStore(t))
	var ce *graph.CycleError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{"x@n1", "y@n1", "x@n1"}, ce.Path)
	require.Contains(t, err.Error(), "x@n1 → y@n1 → x@n1")
}

// chain binds a → b → c on every node and agg over all a's.
func chain(f *fakes, d *graph.Deployment, names ...string) *graph.Pool {
	p := d.Pool("p", nodes(names...)...)
	d.Bind(p, f.roleA(role.Meta{Retry: fastRetry}), f.roleB(role.Meta{}), f.roleC(role.Meta{}), f.roleAgg(role.Meta{}))
	return p
}

func TestBlockedByAndIndependentBranches(t *testing.T) {
	f := newFakes()
	f.always["a@n1"] = true
	d := graph.NewDeployment("blk")
	chain(f, d, "n1", "n2", "n3")
	_, res, err := planApply(t, d, memStore(t), graph.Options{Parallelism: 4})
	require.Error(t, err)
	var ne *graph.NodeRoleError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "a@n1", ne.ID)
	require.Equal(t, 3, ne.Attempts)

	require.Equal(t, graph.StateFailed, state(t, res, "a@n1").State)
	for _, id := range []string{"b@n1", "c@n1", "agg@n1"} {
		o := state(t, res, id)
		require.Equal(t, graph.StateBlocked, o.State, id)
		require.Equal(t, "a@n1", o.BlockedBy, id)
		require.Equal(t, "blocked by a@n1: a@n1: exploded", o.Reason, id)
		require.Zero(t, f.count(id), id)
	}
	for _, n := range []string{"n2", "n3"} {
		for _, r := range []string{"a", "b", "c"} {
			require.Equal(t, graph.StateSucceeded, state(t, res, r+"@"+n).State)
			require.Equal(t, 1, f.count(r+"@"+n))
		}
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(f *fakes)
		state    graph.State
		attempts int
	}{
		{"flaky then success", func(f *fakes) { f.failN["a@n1"] = 2 }, graph.StateSucceeded, 3},
		{"permanent error is not retried", func(f *fakes) { f.perm["a@n1"] = true }, graph.StateFailed, 1},
		{"gives up after max attempts", func(f *fakes) { f.always["a@n1"] = true }, graph.StateFailed, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakes()
			tc.setup(f)
			var mu sync.Mutex
			var retrying int
			d := graph.NewDeployment("retry")
			d.Bind(d.Pool("p", nodes("n1")...), f.roleA(role.Meta{Retry: fastRetry}))
			_, res, _ := planApply(t, d, memStore(t), graph.Options{Events: graph.SubscriberFunc(func(ctx context.Context, e graph.Event) {
				if e.State == graph.StateRetrying {
					mu.Lock()
					retrying++
					mu.Unlock()
				}
			})})
			o := state(t, res, "a@n1")
			require.Equal(t, tc.state, o.State)
			require.Equal(t, tc.attempts, o.Attempts)
			require.Equal(t, tc.attempts, f.count("a@n1"))
			mu.Lock()
			defer mu.Unlock()
			if tc.state == graph.StateSucceeded {
				require.Equal(t, tc.attempts-1, retrying)
			}
		})
	}
}

// eventLog records events in order.
type eventLog struct {
	mu sync.Mutex
	ev []graph.Event
}

func (l *eventLog) Handle(_ context.Context, e graph.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev = append(l.ev, e)
}

func (l *eventLog) events() []graph.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]graph.Event(nil), l.ev...)
}

func TestRolloutBreaker(t *testing.T) {
	f := newFakes()
	names := nodeNames(12)
	for _, n := range names {
		f.always["a@"+n] = true
		f.sleep["a@"+n] = 2 * time.Millisecond
	}
	d := graph.NewDeployment("brk")
	p := d.Pool("p", nodes(names...)...)
	d.Bind(p, f.roleA(role.Meta{}), f.roleB(role.Meta{}))
	d.SetRollout("a", graph.Rollout{MaxFailed: 3})
	log := &eventLog{}
	_, res, err := planApply(t, d, memStore(t), graph.Options{Parallelism: 4, Events: log})
	var be *graph.BreakerError
	require.ErrorAs(t, err, &be)
	require.Equal(t, "a", be.Role)
	require.Equal(t, 12, be.Total)
	require.Equal(t, 3, be.MaxFailed)

	// Find the trip: the first event naming the breaker.
	evs := log.events()
	trip := -1
	inFlight := map[string]bool{}
	for k, e := range evs {
		if e.State == graph.StateRunning {
			inFlight[e.ID] = true
		}
		if e.State == graph.StateFailed || e.State == graph.StateSucceeded {
			delete(inFlight, e.ID)
		}
		if e.State == graph.StateBlocked && strings.Contains(e.Reason, "breaker tripped (3 of 12 failed") {
			trip = k
			break
		}
	}
	require.Positive(t, trip, "the breaker never tripped")
	require.LessOrEqual(t, len(inFlight), 3, "at most Parallelism-1 node-roles can be in flight at the trip")
	for _, e := range evs[trip:] {
		if e.State == graph.StateRunning {
			t.Fatalf("%s started after the breaker tripped", e.ID)
		}
	}
	started := 0
	for _, n := range names {
		started += f.count("a@" + n)
		require.Zero(t, f.count("b@"+n), "nothing below the tripped role runs")
	}
	require.Equal(t, res.Count(graph.StateFailed), started)
	require.Equal(t, be.Failed, started)
	require.GreaterOrEqual(t, started, 3)
	require.LessOrEqual(t, started, 3+len(inFlight))
	require.Equal(t, 12-started, res.Count(graph.StateBlocked)-12, "every unstarted a and every b is blocked")
	require.Equal(t, res.Count(graph.StateBlocked)-3, be.NotStarted, "the b's below the 3 failures before the trip are blocked by them, all else by the trip")
}

func TestRolloutBreakerFraction(t *testing.T) {
	f := newFakes()
	names := nodeNames(8)
	f.always["a@n2"], f.always["a@n5"], f.always["a@n7"] = true, true, true
	d := graph.NewDeployment("frac")
	d.Bind(d.Pool("p", nodes(names...)...), f.roleA(role.Meta{}))
	d.SetRollout("a", graph.Rollout{MaxFailedFraction: 0.25, Batch: 1})
	_, res, err := planApply(t, d, memStore(t), graph.Options{Parallelism: 8})
	// One node at a time; the breaker allows 2 of 8 failures: n2 fails and
	// batch 3 (n3) does not start because batch 2 did not pass.
	require.Error(t, err)
	require.Equal(t, 1, res.Count(graph.StateSucceeded))
	require.Equal(t, 1, res.Count(graph.StateFailed))
	o := state(t, res, "a@n3")
	require.Equal(t, graph.StateBlocked, o.State)
	require.Contains(t, o.Reason, `batch 3 of 8 of role "a" not started: batch 2 did not pass`)
	require.Equal(t, "a@n2", o.BlockedBy)
}

func TestBatches(t *testing.T) {
	f := newFakes()
	names := nodeNames(6)
	for _, n := range names {
		f.sleep["a@"+n] = 3 * time.Millisecond
	}
	d := graph.NewDeployment("batch")
	d.Bind(d.Pool("p", nodes(names...)...), f.roleA(role.Meta{}))
	d.SetRollout("a", graph.Rollout{BatchPercent: 33}) // 3 batches of 2
	log := &eventLog{}
	_, res, err := planApply(t, d, memStore(t), graph.Options{Parallelism: 6, Events: log})
	require.NoError(t, err)
	require.Equal(t, 6, res.Count(graph.StateSucceeded))
	batchOf := func(id string) int {
		var k int
		fmt.Sscanf(id, "a@n%d", &k)
		return (k - 1) / 2
	}
	finished := map[int]int{}
	for _, e := range log.events() {
		switch e.State {
		case graph.StateRunning:
			b := batchOf(e.ID)
			if b > 0 {
				require.Equal(t, 2, finished[b-1], "%s started before batch %d finished", e.ID, b)
			}
		case graph.StateSucceeded:
			finished[batchOf(e.ID)]++
		}
	}

	// A failure in batch 2 stops batch 3.
	f2 := newFakes()
	f2.always["a@n4"] = true
	d2 := graph.NewDeployment("batch2")
	d2.Bind(d2.Pool("p", nodes(names...)...), f2.roleA(role.Meta{}))
	d2.SetRollout("a", graph.Rollout{Batch: 2})
	_, res, err = planApply(t, d2, memStore(t), graph.Options{Parallelism: 6})
	require.Error(t, err)
	for _, n := range []string{"n1", "n2", "n3"} {
		require.Equal(t, graph.StateSucceeded, state(t, res, "a@"+n).State)
	}
	for _, n := range []string{"n5", "n6"} {
		o := state(t, res, "a@"+n)
		require.Equal(t, graph.StateBlocked, o.State)
		require.Equal(t, "a@n4", o.BlockedBy)
		require.Zero(t, f2.count("a@"+n))
	}
}

func TestOrderingAndPerNode(t *testing.T) {
	f := newFakes()
	d := graph.NewDeployment("order")
	// n1 has a long chain; n2 and n3 one role each. With one worker the
	// critical path goes first.
	d.Bind(d.Pool("long", nodes("n1")...), f.roleA(role.Meta{}), f.roleB(role.Meta{}), f.roleC(role.Meta{}))
	d.Bind(d.Pool("short", nodes("n2", "n3")...), f.roleA(role.Meta{Name: "z"}))
	_, _, err := planApply(t, d, memStore(t), graph.Options{Parallelism: 1})
	require.NoError(t, err)
	require.Equal(t, "a@n1", f.starts[0], "the longest remaining path starts first")

	// Many workers, one node-role per node at a time.
	f = newFakes()
	d = graph.NewDeployment("pernode")
	p := d.Pool("p", nodes("n1", "n2")...)
	for _, name := range []string{"r1", "r2", "r3", "r4"} {
		f.sleep[name] = 2 * time.Millisecond
		d.Bind(p, f.roleA(role.Meta{Name: name}))
	}
	_, _, err = planApply(t, d, memStore(t), graph.Options{Parallelism: 8})
	require.NoError(t, err)
	require.Equal(t, 1, f.maxNode)
	require.Equal(t, int32(2), f.maxRun.Load())
}

func TestCancelMidRun(t *testing.T) {
	f := newFakes()
	f.startedC = make(chan string, 100)
	gate := make(chan struct{})
	for _, n := range []string{"n1", "n2"} {
		f.gate["a@"+n] = gate
	}
	d := graph.NewDeployment("cancel")
	chain(f, d, "n1", "n2", "n3", "n4")
	st := memStore(t)
	p, err := graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		res *graph.Result
		err error
	}
	done := make(chan out)
	go func() {
		r, err := graph.Apply(ctx, p, graph.Options{Parallelism: 2})
		done <- out{r, err}
	}()
	<-f.startedC
	<-f.startedC
	cancel()
	time.Sleep(10 * time.Millisecond) // the executor sees the cancellation while both are in flight
	close(gate)
	o := <-done
	require.ErrorIs(t, o.err, context.Canceled)
	require.Equal(t, 2, o.res.Count(graph.StateSucceeded), "in-flight work finished")
	require.Equal(t, 2, f.total(), "nothing new started after the cancellation")
	require.Equal(t, 13-2, o.res.Count(graph.StatePending))

	// The journal is consistent: the next apply does exactly the rest.
	p, err = graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	require.Equal(t, 2, p.Count(graph.ActionSkip))
	_, err = graph.Apply(context.Background(), p, graph.Options{Parallelism: 2})
	require.NoError(t, err)
	for _, n := range nodeNames(4) {
		for _, r := range []string{"a", "b", "c"} {
			require.Equal(t, 1, f.count(r+"@"+n), r+"@"+n)
		}
	}
}

func TestConvergedRunsNothing(t *testing.T) {
	f := newFakes()
	d := graph.NewDeployment("conv")
	chain(f, d, "n1", "n2", "n3")
	st := memStore(t)
	_, _, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	runs := f.total()
	require.Equal(t, 10, runs)

	p, res, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, len(p.Steps), p.Count(graph.ActionSkip), p.String())
	for _, s := range p.Steps {
		require.Equal(t, graph.ReasonConverged, s.Why, s.ID)
		require.Equal(t, "converged", s.Reason)
	}
	require.Equal(t, 10, res.Count(graph.StateSkipped))
	require.Equal(t, runs, f.total())
}

type GrowOut struct{ Self string }

type GrowIn struct{ Peers role.All[AOut] }

type PostIn struct{ M role.Same[GrowOut] }

func TestAddNodeRerunsOnlyAffectedPeers(t *testing.T) {
	f := newFakes()
	member := role.Func(role.Meta{Name: "member"}, func(ctx context.Context, rc *role.Context, in GrowIn) (GrowOut, error) {
		return GrowOut{Self: rc.Node().Name}, f.hook(ctx, rc)
	})
	post := role.Func(role.Meta{Name: "post"}, func(ctx context.Context, rc *role.Context, in PostIn) (COut, error) {
		return COut{V: in.M.Value.Self}, f.hook(ctx, rc)
	})
	d := graph.NewDeployment("grow")
	p := d.Pool("p", nodes("n1", "n2", "n3")...)
	d.Bind(p, f.roleA(role.Meta{}), f.roleB(role.Meta{}), role.Of(member), role.Of(post))
	st := memStore(t)
	_, _, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	before := map[string]int{}
	for k, v := range f.runs {
		before[k] = v
	}

	p.Add(nodes("n4")...)
	plan, err := graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	kinds := map[string]graph.ReasonKind{"a@n4": graph.ReasonNew, "member@n1": graph.ReasonInputChanged, "post@n1": graph.ReasonInputsAfterRun}
	want := map[string]string{
		"a@n4": "new", "b@n4": "new", "member@n4": "new", "post@n4": "new",
		"member@n1": "input Peers changed: +n4", "member@n2": "input Peers changed: +n4", "member@n3": "input Peers changed: +n4",
		"post@n1": "inputs known after run (waits for member@n1)",
		"post@n2": "inputs known after run (waits for member@n2)",
		"post@n3": "inputs known after run (waits for member@n3)",
	}
	for _, s := range plan.Steps {
		if k, ok := kinds[s.ID]; ok {
			require.Equal(t, k, s.Why, s.ID)
		}
		if r, ok := want[s.ID]; ok {
			require.Equal(t, r, s.Reason, s.ID)
			require.NotEqual(t, graph.ActionSkip, s.Action, s.ID)
		} else {
			require.Equal(t, graph.ActionSkip, s.Action, "%s: %s", s.ID, s.Reason)
		}
	}
	res, err := graph.Apply(context.Background(), plan, graph.Options{})
	require.NoError(t, err)
	ran := map[string]int{}
	for k, v := range f.runs {
		if v > before[k] {
			ran[k] = v - before[k]
		}
	}
	require.Equal(t, map[string]int{"a@n4": 1, "b@n4": 1, "member@n4": 1, "post@n4": 1,
		"member@n1": 1, "member@n2": 1, "member@n3": 1}, ran)
	require.Equal(t, "converged: inputs unchanged after upstream ran", state(t, res, "post@n1").Reason)
	require.Equal(t, graph.ReasonConverged, state(t, res, "post@n1").Why)
	require.Equal(t, graph.ReasonInputChanged, state(t, res, "member@n1").Why)
}

// checked is a role whose Check reports drift on the nodes listed.
type checked struct {
	f     *fakes
	drift map[string]string
}

func (checked) Meta() role.Meta { return role.Meta{Name: "svc", Version: "1"} }

func (c checked) Run(ctx context.Context, rc *role.Context, _ struct{}) (AOut, error) {
	return AOut{V: "svc-" + rc.Node().Name}, c.f.hook(ctx, rc)
}

func (c checked) Check(ctx context.Context, rc *role.Context, _ struct{}, last AOut) (string, error) {
	if last.V != "svc-"+rc.Node().Name {
		return "", errors.New("wrong last output passed to Check")
	}
	return c.drift[rc.Node().Name], nil
}

func TestDriftCheckPlansOnlyThatNodeRole(t *testing.T) {
	f := newFakes()
	c := checked{f: f, drift: map[string]string{}}
	d := graph.NewDeployment("drift")
	d.Bind(d.Pool("p", nodes("n1", "n2", "n3")...), role.Of(c), f.roleB(role.Meta{}))
	st := memStore(t)
	_, _, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)

	c.drift["n2"] = "svc.service is not running"
	d2 := graph.NewDeployment("drift")
	d2.Bind(d2.Pool("p", nodes("n1", "n2", "n3")...), role.Of(c), f.roleB(role.Meta{}))
	p, err := graph.NewPlan(context.Background(), d2, st)
	require.NoError(t, err)
	require.Equal(t, 1, p.Count(graph.ActionRun), p.String())
	s, _ := p.Step("svc@n2")
	require.Equal(t, graph.ActionRun, s.Action)
	require.Equal(t, "drifted: svc.service is not running", s.Reason)
	require.Equal(t, graph.ReasonDrifted, s.Why)
	s, _ = p.Step("b@n2")
	require.Equal(t, graph.ActionRunIfChanged, s.Action)
	_, err = graph.Apply(context.Background(), p, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 2, f.count("svc@n2"))
	require.Equal(t, 1, f.count("b@n2"), "b's input did not change")
	require.Equal(t, 1, f.count("svc@n1"))
}

func TestTwoDeploymentsSideBySide(t *testing.T) {
	var wg sync.WaitGroup
	results := make([]*graph.Result, 2)
	fs := []*fakes{newFakes(), newFakes()}
	fs[1].always["a@n2"] = true
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := graph.NewDeployment(fmt.Sprintf("dep%d", k))
			for _, n := range nodeNames(5) {
				fs[k].sleep["a@"+n] = time.Millisecond
			}
			chain(fs[k], d, nodeNames(5)...)
			_, res, _ := planApply(t, d, memStore(t), graph.Options{Parallelism: 3})
			results[k] = res
		}()
	}
	wg.Wait()
	require.Equal(t, 16, results[0].Count(graph.StateSucceeded))
	require.Equal(t, 1, results[1].Count(graph.StateFailed))
	require.Equal(t, 3, results[1].Count(graph.StateBlocked)) // b, c on n2 and agg
	require.Equal(t, 16, fs[0].total())
	require.Equal(t, 16-1-2-1+3, fs[1].total()) // a@n2 ran 3 times; b@n2, c@n2 and agg never
}

// A node dropped from the deployment is removed: its node-roles (no
// Undo here) are forgotten, and its peers re-run.
func TestRemovedNodeIsForgotten(t *testing.T) {
	f := newFakes()
	st := memStore(t)
	d := graph.NewDeployment("shrink")
	chain(f, d, "n1", "n2")
	_, _, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)

	d = graph.NewDeployment("shrink")
	chain(f, d, "n1")
	p, err := graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	require.Empty(t, p.Orphans)
	require.Len(t, p.Removals, 1)
	var forgotten []string
	for _, s := range p.Removals[0].Steps {
		require.False(t, s.Undo)
		forgotten = append(forgotten, s.ID)
	}
	require.ElementsMatch(t, []string{"a@n2", "b@n2", "c@n2"}, forgotten)
	s, _ := p.Step("agg@n1")
	require.Equal(t, "input Peers changed: -n2", s.Reason)
	require.Equal(t, graph.ReasonInputChanged, s.Why)
	require.Equal(t, []string{"Peers"}, s.Changed)
	_, err = graph.Apply(context.Background(), p, graph.Options{})
	require.NoError(t, err)
	_, err = graph.Apply(context.Background(), p, graph.Options{})
	require.ErrorContains(t, err, "already applied")

	// Added again under the same name: it runs again.
	d = graph.NewDeployment("shrink")
	chain(f, d, "n1", "n2")
	p, err = graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	require.Empty(t, p.Orphans)
	for _, id := range []string{"a@n2", "b@n2", "c@n2"} {
		s, _ := p.Step(id)
		require.Equal(t, "new", s.Reason, id)
		require.Equal(t, graph.ReasonNew, s.Why, id)
	}
}

// StopTimeout bounds how long running roles may go on after cancellation;
// then their own context is cancelled.
func TestStopTimeoutCancelsRunningRoles(t *testing.T) {
	started := make(chan struct{})
	stuck := role.Func(role.Meta{Name: "stuck"}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) {
		close(started)
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	d := graph.NewDeployment("stop")
	d.Bind(d.Pool("p", nodes("n1")...), role.Of(stuck))
	p, err := graph.NewPlan(context.Background(), d, memStore(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	res, err := graph.Apply(ctx, p, graph.Options{StopTimeout: 5 * time.Millisecond})
	require.ErrorIs(t, err, context.Canceled)
	o := state(t, res, "stuck@n1")
	require.Equal(t, graph.StateFailed, o.State)
	require.ErrorIs(t, o.Err, context.Canceled)
}
