package graph_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/claim"
)

// Outputs of the chain deployment's roles.
type (
	Step1 struct{ V string }
	Step2 struct{ V string }
	Step3 struct{ V string }
	Step4 struct{ V string }
)

// chainRun is what a chain role does: it is told its node-role's ID and
// how long to take, and returns an error to fail.
type chainRun func(ctx context.Context, id string, d time.Duration) error

// sleepRun sleeps for d, or until ctx ends.
func sleepRun(ctx context.Context, _ string, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// spread gives each node-role a duration in [lo, hi], fixed by its ID.
func spread(lo, hi time.Duration) func(id string) time.Duration {
	return func(id string) time.Duration {
		h := fnv.New32a()
		h.Write([]byte(id))
		return lo + time.Duration(h.Sum32())%(hi-lo+1)
	}
}

// chainDeployment has nodes nodes, each with a chain of four roles
// (s1 → s2 → s3 → s4, each consuming the previous one's output): 4×nodes
// node-roles.
func chainDeployment(name string, nodes int, dur func(id string) time.Duration, run chainRun) *graph.Deployment {
	d := graph.NewDeployment(name)
	ns := make([]*provider.Node, nodes)
	for i := range ns {
		ns[i] = &provider.Node{Name: fmt.Sprintf("n%03d", i)}
	}
	do := func(ctx context.Context, rc *role.Context, prev string) (string, error) {
		id := rc.Role() + "@" + rc.Node().Name
		return prev + "/" + id, run(ctx, id, dur(id))
	}
	s1 := role.Func(role.Meta{Name: "s1"}, func(ctx context.Context, rc *role.Context, _ struct{}) (Step1, error) {
		v, err := do(ctx, rc, "")
		return Step1{v}, err
	})
	s2 := role.Func(role.Meta{Name: "s2"}, func(ctx context.Context, rc *role.Context, in struct{ P role.Same[Step1] }) (Step2, error) {
		v, err := do(ctx, rc, in.P.Value.V)
		return Step2{v}, err
	})
	s3 := role.Func(role.Meta{Name: "s3"}, func(ctx context.Context, rc *role.Context, in struct{ P role.Same[Step2] }) (Step3, error) {
		v, err := do(ctx, rc, in.P.Value.V)
		return Step3{v}, err
	})
	s4 := role.Func(role.Meta{Name: "s4"}, func(ctx context.Context, rc *role.Context, in struct{ P role.Same[Step3] }) (Step4, error) {
		v, err := do(ctx, rc, in.P.Value.V)
		return Step4{v}, err
	})
	d.Bind(d.Pool("all", ns...), role.Of(s1), role.Of(s2), role.Of(s3), role.Of(s4))
	return d
}

// runLog records which controller ran which node-role, when.
type runLog struct {
	mu   sync.Mutex
	runs map[string][]span
}

type span struct {
	owner      string
	start, end time.Time
}

func (l *runLog) run(owner string) chainRun {
	return func(ctx context.Context, id string, d time.Duration) error {
		s := span{owner: owner, start: time.Now()}
		err := sleepRun(ctx, id, d)
		s.end = time.Now()
		l.mu.Lock()
		l.runs[id] = append(l.runs[id], s)
		l.mu.Unlock()
		return err
	}
}

// TestControllersShareWork applies one deployment from three controllers
// at once on one store: every node-role runs exactly once across them,
// every controller's Apply ends with the whole deployment converged (its
// own runs plus the others' adopted), and no claim is left behind.
func TestControllersShareWork(t *testing.T) {
	tests := []struct {
		name        string
		controllers int
		parallel    int
	}{
		{"two controllers", 2, 4},
		{"three controllers", 3, 8},
		{"one controller", 1, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memStore(t)
			const nodes = 15
			log := &runLog{runs: map[string][]span{}}
			ctx := context.Background()
			type result struct {
				res *graph.Result
				err error
			}
			results := make([]result, tc.controllers)
			var wg sync.WaitGroup
			for c := range tc.controllers {
				owner := fmt.Sprintf("ctl-%d", c)
				d := chainDeployment("shared", nodes, spread(2*time.Millisecond, 10*time.Millisecond), log.run(owner))
				p, err := graph.NewPlan(ctx, d, st)
				require.NoError(t, err)
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := graph.Apply(ctx, p, graph.Options{Parallelism: tc.parallel, Controller: &graph.Controller{Name: owner, TTL: 2 * time.Second}})
					results[c] = result{res, err}
				}()
			}
			wg.Wait()

			ran := map[string]int{}
			for _, r := range results {
				require.NoError(t, r.err)
				require.Equal(t, 4*nodes, r.res.Count(graph.StateSucceeded)+r.res.Count(graph.StateSkipped), "every controller sees the deployment converge")
				for _, o := range r.res.Outcomes {
					switch o.State {
					case graph.StateSucceeded:
						ran[o.ID]++
					case graph.StateSkipped:
						// Adopted from the controller that ran it, or found
						// unchanged once what it waits for had run.
						require.Contains(t, []graph.ReasonKind{graph.ReasonRanElsewhere, graph.ReasonConverged}, o.Why, "%s: %s", o.ID, o.Reason)
					}
				}
			}
			require.Len(t, ran, 4*nodes)
			for id, n := range ran {
				require.Equal(t, 1, n, "%s succeeded in %d controllers", id, n)
				require.Len(t, log.runs[id], 1, "%s ran %d times", id, len(log.runs[id]))
			}
			ents, err := graph.ReadJournal(ctx, st, "shared")
			require.NoError(t, err)
			require.Len(t, ents, 4*nodes)
			for _, e := range ents {
				require.Equal(t, graph.StateSucceeded, e.State, e.ID)
			}
			claims, _, err := st.List(ctx, graph.ClaimPrefix("shared"))
			require.NoError(t, err)
			require.Empty(t, claims, "no claim outlives its Apply")

			// The adopted outputs are the real ones: a new plan from any
			// controller finds everything converged.
			p, err := graph.NewPlan(ctx, chainDeployment("shared", nodes, spread(time.Millisecond, time.Millisecond), sleepRun), st)
			require.NoError(t, err)
			for _, s := range p.Steps {
				require.Equal(t, graph.ActionSkip, s.Action, "%s: %s", s.ID, s.Reason)
			}
		})
	}
}

// TestControllerAdoptsFailure: a node-role that failed in one controller
// is not run again by another that was waiting for it; both report the
// failure and block what depends on it.
func TestControllerAdoptsFailure(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	var mu sync.Mutex
	runs := map[string]int{}
	run := func(ctx context.Context, id string, d time.Duration) error {
		mu.Lock()
		runs[id]++
		mu.Unlock()
		if err := sleepRun(ctx, id, d); err != nil {
			return err
		}
		if id == "s2@n000" {
			return errors.New("disk full")
		}
		return nil
	}
	var wg sync.WaitGroup
	results := make([]*graph.Result, 2)
	for c := range 2 {
		p, err := graph.NewPlan(ctx, chainDeployment("fail", 2, spread(20*time.Millisecond, 20*time.Millisecond), run), st)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[c], _ = graph.Apply(ctx, p, graph.Options{Controller: &graph.Controller{Name: fmt.Sprint("ctl-", c)}})
		}()
	}
	wg.Wait()
	require.Equal(t, 1, runs["s2@n000"], "the failing node-role ran once")
	adopted := 0
	for _, res := range results {
		require.Equal(t, graph.StateFailed, state(t, res, "s2@n000").State)
		if o := state(t, res, "s2@n000"); o.Why == graph.ReasonFailedElsewhere {
			adopted++
			require.ErrorContains(t, o.Err, "failed in another controller since the plan: disk full")
		}
		require.Equal(t, graph.StateBlocked, state(t, res, "s3@n000").State)
		require.Equal(t, graph.StateBlocked, state(t, res, "s4@n000").State)
		require.Contains(t, []graph.State{graph.StateSucceeded, graph.StateSkipped}, state(t, res, "s4@n001").State, "the other node goes on")
	}
	require.Equal(t, 1, adopted, "one controller ran it and failed, the other adopted the failure")
}

// TestControllerFencedAfterLoss: a controller that cannot renew its lease
// (here: its lease is revoked under it, as an expiry would) stops, its
// roles' contexts are cancelled, and its late records do not overwrite
// the journal of the controller that took the node-role over.
func TestControllerFencedAfterLoss(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	slow := func(ctx context.Context, id string, d time.Duration) error {
		if id == "s1@n000" {
			once.Do(func() { close(started) })
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	d := chainDeployment("lost", 1, spread(0, 0), slow)
	p, err := graph.NewPlan(ctx, d, st)
	require.NoError(t, err)
	done := make(chan error, 1)
	var res *graph.Result
	go func() {
		var err error
		res, err = graph.Apply(ctx, p, graph.Options{Controller: &graph.Controller{Name: "victim", TTL: time.Second}})
		done <- err
	}()
	<-started
	// Take the victim's claim away the way an expiry does: delete it
	// (its lease is still alive, so the victim does not know yet).
	key := graph.ClaimPrefix("lost") + "s1@n000"
	ent, err := st.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "victim", string(ent.Value))
	require.NoError(t, st.Delete(ctx, key))
	thief, err := claim.NewSession(ctx, st, claim.Options{Prefix: graph.ClaimPrefix("lost"), Owner: "thief", TTL: time.Second})
	require.NoError(t, err)
	defer thief.Close(ctx)
	c, err := thief.Claim(ctx, "s1@n000")
	require.NoError(t, err)
	_, err = c.Txn(ctx, store.PutOp("mason/graph/lost/nr/s1@n000", []byte("the new owner's record")))
	require.NoError(t, err)

	close(release) // the victim's role finishes and tries to journal success
	err = <-done
	require.ErrorIs(t, err, claim.ErrLost)
	require.Equal(t, graph.StateFailed, state(t, res, "s1@n000").State)
	require.Equal(t, graph.StatePending, state(t, res, "s2@n000").State, "nothing starts after the loss")
	ent, err = st.Get(ctx, "mason/graph/lost/nr/s1@n000")
	require.NoError(t, err)
	require.Equal(t, "the new owner's record", string(ent.Value), "the late write was fenced off")
}

// TestControllerTakeover: controller A's lease ends under it (revoked
// here, as an expiry would end it) while it runs s2@n000; controller B,
// which parked that node-role behind A's claim, takes it over and
// converges; A notices the loss, cancels its role's context and stops
// with claim.ErrLost.
func TestControllerTakeover(t *testing.T) {
	st := memStore(t)
	ctx := context.Background()
	const victim = "s2@n000"
	aStarted, aCancelled := make(chan struct{}), make(chan struct{})
	runA := func(ctx context.Context, id string, d time.Duration) error {
		if id != victim {
			return sleepRun(ctx, id, d)
		}
		close(aStarted)
		<-ctx.Done() // hangs until A's claims are gone
		close(aCancelled)
		return ctx.Err()
	}
	var bRan sync.Map
	runB := func(ctx context.Context, id string, d time.Duration) error {
		bRan.Store(id, true)
		return sleepRun(ctx, id, d)
	}
	pa, err := graph.NewPlan(ctx, chainDeployment("takeover", 2, spread(time.Millisecond, 5*time.Millisecond), runA), st)
	require.NoError(t, err)
	pb, err := graph.NewPlan(ctx, chainDeployment("takeover", 2, spread(time.Millisecond, 5*time.Millisecond), runB), st)
	require.NoError(t, err)

	aDone := make(chan error, 1)
	go func() {
		_, err := graph.Apply(ctx, pa, graph.Options{Controller: &graph.Controller{Name: "a", TTL: time.Second}})
		aDone <- err
	}()
	<-aStarted
	type result struct {
		res *graph.Result
		err error
	}
	bDone := make(chan result, 1)
	bTried := make(chan struct{}, 1)
	watchB := graph.SubscriberFunc(func(_ context.Context, e graph.Event) {
		if e.ID == victim && e.State == graph.StateRunning {
			select {
			case bTried <- struct{}{}:
			default:
			}
		}
	})
	go func() {
		res, err := graph.Apply(ctx, pb, graph.Options{Events: watchB, Controller: &graph.Controller{Name: "b", TTL: time.Second}})
		bDone <- result{res, err}
	}()
	// Once B found A's claim on the victim (and parked it), end A's lease.
	select {
	case <-bTried:
	case <-time.After(10 * time.Second):
		t.Fatal("B never got to " + victim)
	}
	ent, err := st.Get(ctx, graph.ClaimPrefix("takeover")+victim)
	require.NoError(t, err)
	require.Equal(t, "a", string(ent.Value))
	require.NoError(t, st.Revoke(ctx, ent.Lease))

	b := <-bDone
	require.NoError(t, b.err)
	res := b.res
	_, ran := bRan.Load(victim)
	require.True(t, ran, "B ran %s after A's lease ended", victim)
	require.Equal(t, graph.StateSucceeded, state(t, res, victim).State)
	require.Equal(t, 8, res.Count(graph.StateSucceeded)+res.Count(graph.StateSkipped))
	select {
	case <-aCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("A's role was not cancelled after A lost its claims")
	}
	require.ErrorIs(t, <-aDone, claim.ErrLost)
	ents, err := graph.ReadJournal(ctx, st, "takeover")
	require.NoError(t, err)
	for _, e := range ents {
		require.Equal(t, graph.StateSucceeded, e.State, e.ID)
	}
}
