package graph_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/store"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// The failover test: controller processes apply one 200-node-role
// deployment through one real etcd; the busiest is SIGKILLed mid-run.
const (
	foDeployment  = "fo"
	foNodes       = 50 // × 4 roles = 200 node-roles
	foNodeRoles   = 4 * foNodes
	foControllers = 3
	foRuns        = 5
	foTTL         = 3 * time.Second
	foEnv         = "MASON_GRAPH_CONTROLLER" // endpoints|prefix|owner
)

var foDurations = spread(50*time.Millisecond, 200*time.Millisecond)

// controllerProcess is the controller TestControllerFailover starts (and
// kills); TestMain runs it when foEnv is set.
func controllerProcess(t childtest.T) {
	cfg := os.Getenv(foEnv)
	parts := strings.Split(cfg, "|")
	require.Len(t, parts, 3)
	owner := parts[2]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: strings.Split(parts[0], ","), Prefix: parts[1]})
	require.NoError(t, err)
	defer st.Close()

	// The role records each run's interval outside the journal, so the
	// test can check the runs themselves, not only what was journaled.
	run := func(ctx context.Context, id string, d time.Duration) error {
		key := fmt.Sprintf("runs/%s/%s/%d", id, owner, time.Now().UnixNano())
		if _, err := st.Put(ctx, key, nil); err != nil {
			return err
		}
		if err := sleepRun(ctx, id, d); err != nil {
			return err
		}
		_, err := st.Put(ctx, key, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)))
		return err
	}
	p, err := graph.NewPlan(ctx, chainDeployment(foDeployment, foNodes, foDurations, run), st)
	require.NoError(t, err)
	res, err := graph.Apply(ctx, p, graph.Options{Parallelism: 8, Controller: &graph.Controller{Name: owner, TTL: foTTL}})
	require.NoError(t, err)
	t.Logf("%s: %d ran here, %d adopted or converged, in %v", owner, res.Count(graph.StateSucceeded), res.Count(graph.StateSkipped), res.Elapsed)
	require.Equal(t, foNodeRoles, res.Count(graph.StateSucceeded)+res.Count(graph.StateSkipped))
}

// TestControllerFailover: three controller processes apply one
// deployment of 200 node-roles (roles take 50-200ms) through one etcd;
// mid-run the one holding the most claims is SIGKILLed right after it
// journals a start. Five runs. Each run must converge in the survivors,
// and neither the journal's history (every write, from a watch) nor the
// roles' own records may show a node-role running in two controllers at
// once. The takeover (kill → the victim's claims freed → first of its
// node-roles claimed by a survivor) must take at most the lease TTL and a
// second, as the README promises.
func TestControllerFailover(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	var takeovers []string
	for run := 1; run <= foRuns; run++ {
		freed, taken := failoverRun(t, c, run)
		takeovers = append(takeovers, fmt.Sprintf("%v/%v", freed, taken))
		require.LessOrEqual(t, taken, foTTL+time.Second,
			"run %d: a survivor took the killed controller's node-roles over %v after the kill; the bound is the lease TTL (%v) and a second", run, taken, foTTL)
	}
	t.Logf("takeover after SIGKILL (claims freed / first node-role re-claimed), lease TTL %v: %s; every run within TTL+1s",
		foTTL, strings.Join(takeovers, ", "))
}

type foChild struct {
	owner string
	cmd   *exec.Cmd
	log   string
	done  chan error
}

// seenEvent is a watch event and when the test received it.
type seenEvent struct {
	store.Event
	at time.Time
}

func failoverRun(t *testing.T, c *etcdtest.Cluster, run int) (freed, taken time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("failover/run-%d/", run)
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: prefix})
	require.NoError(t, err)
	defer st.Close()
	claimPfx, journalPfx := graph.ClaimPrefix(foDeployment), "mason/graph/"+foDeployment+"/nr/"

	// Every write of the run, in revision order.
	_, rev, err := st.List(ctx, "mason/")
	require.NoError(t, err)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	watch, err := st.Watch(wctx, "", rev+1)
	require.NoError(t, err)
	var mu sync.Mutex
	var history []seenEvent
	newEvent := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ev := range watch {
			mu.Lock()
			history = append(history, seenEvent{ev, time.Now()})
			mu.Unlock()
			select {
			case newEvent <- struct{}{}:
			default:
			}
		}
	}()
	// scan calls f on every event from index *from on.
	scan := func(from *int, f func(seenEvent) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for ; *from < len(history); *from++ {
			if f(history[*from]) {
				*from++
				return true
			}
		}
		return false
	}
	waitFor := func(what string, f func(seenEvent) bool) {
		t.Helper()
		from := 0
		deadline := time.After(60 * time.Second)
		for !scan(&from, f) {
			select {
			case <-newEvent:
			case <-deadline:
				t.Fatalf("run %d: no %s within 60s", run, what)
			}
		}
	}

	children := map[string]*foChild{}
	dir := t.TempDir()
	for i := range foControllers {
		owner := fmt.Sprintf("ctl-%d-%d", run, i)
		ch := &foChild{owner: owner, log: filepath.Join(dir, owner+".log"), done: make(chan error, 1)}
		ch.cmd = exec.Command(os.Args[0], "-test.run=^$", "-test.count=1", "-test.v")
		ch.cmd.Env = append(os.Environ(), foEnv+"="+strings.Join(c.Endpoints(), ",")+"|"+prefix+"|"+owner)
		logf, err := os.Create(ch.log)
		require.NoError(t, err)
		ch.cmd.Stdout, ch.cmd.Stderr = logf, logf
		ch.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, ch.cmd.Start())
		go func() { ch.done <- ch.cmd.Wait(); logf.Close() }()
		t.Cleanup(func() { _ = ch.cmd.Process.Kill() })
		children[owner] = ch
	}

	// Mid-run: a fifth of the deployment has succeeded.
	succeeded := map[string]bool{}
	waitFor("progress", func(ev seenEvent) bool {
		if ev.Type == store.EventPut && strings.HasPrefix(ev.Key, journalPfx) {
			if e, err := graph.DecodeEntry(ev.Value); err == nil && e.State == graph.StateSucceeded {
				succeeded[e.ID] = true
			}
		}
		return len(succeeded) >= foNodeRoles/5
	})
	// The victim: the controller holding the most claims.
	claims, _, err := st.List(ctx, claimPfx)
	require.NoError(t, err)
	held := map[string]int{}
	for _, e := range claims {
		held[string(e.Value)]++
	}
	victim := ""
	for owner, n := range held {
		if victim == "" || n > held[victim] {
			victim = owner
		}
	}
	require.NotEmpty(t, victim, "run %d: nobody holds a claim mid-run", run)
	// Kill it right after it journals a start, so it dies holding work.
	mu.Lock()
	mark := len(history)
	mu.Unlock()
	holder := map[string]string{} // replayed from the start of the run
	from := 0
	started := func(ev seenEvent) bool {
		if strings.HasPrefix(ev.Key, claimPfx) {
			id := strings.TrimPrefix(ev.Key, claimPfx)
			if ev.Type == store.EventPut {
				holder[id] = string(ev.Value)
			} else {
				delete(holder, id)
			}
			return false
		}
		if from < mark || ev.Type != store.EventPut || !strings.HasPrefix(ev.Key, journalPfx) {
			return false
		}
		e, err := graph.DecodeEntry(ev.Value)
		return err == nil && e.State == graph.StateRunning && holder[e.ID] == victim
	}
	deadline := time.After(30 * time.Second)
	for !scan(&from, started) {
		select {
		case <-newEvent:
		case <-deadline:
			t.Fatalf("run %d: %s started nothing in 30s", run, victim)
		}
	}
	v := children[victim]
	require.NoError(t, v.cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	<-v.done

	orphans := map[string]bool{}
	claims, _, err = st.List(ctx, claimPfx)
	require.NoError(t, err)
	for _, e := range claims {
		if string(e.Value) == victim {
			orphans[strings.TrimPrefix(e.Key, claimPfx)] = true
		}
	}
	require.NotEmpty(t, orphans, "run %d: %s died holding claims", run, victim)

	for owner, ch := range children {
		if owner == victim {
			continue
		}
		select {
		case err := <-ch.done:
			require.NoError(t, err, "run %d: controller %s failed; its log:\n%s", run, owner, readLog(ch.log))
			for _, line := range strings.Split(readLog(ch.log), "\n") {
				if strings.Contains(line, "ran here") {
					t.Logf("run %d: %s", run, strings.TrimSpace(line))
				}
			}
		case <-time.After(75 * time.Second):
			t.Fatalf("run %d: controller %s did not converge; its log:\n%s", run, owner, readLog(ch.log))
		}
	}

	ents, err := graph.ReadJournal(ctx, st, foDeployment)
	require.NoError(t, err)
	require.Len(t, ents, foNodeRoles)
	for _, e := range ents {
		require.Equal(t, graph.StateSucceeded, e.State, "run %d: %s", run, e.ID)
	}
	left, _, err := st.List(ctx, claimPfx)
	require.NoError(t, err)
	require.Empty(t, left, "run %d: claims left behind", run)

	// Let the watch catch up with the last write, then stop it.
	_, last, err := st.List(ctx, "mason/")
	require.NoError(t, err)
	waitFor("last write", func(ev seenEvent) bool { return ev.Revision >= last })
	wcancel()
	<-watchDone

	for _, ev := range history {
		id := strings.TrimPrefix(ev.Key, claimPfx)
		if !strings.HasPrefix(ev.Key, claimPfx) || !orphans[id] || ev.at.Before(killed) {
			continue
		}
		if ev.Type == store.EventDelete && freed == 0 {
			freed = ev.at.Sub(killed)
		}
		if ev.Type == store.EventPut && string(ev.Value) != victim && taken == 0 {
			taken = ev.at.Sub(killed)
		}
	}
	require.NotZero(t, taken, "run %d: nobody took %s's node-roles over", run, victim)
	jruns := checkJournalHistory(t, history, killed, victim)
	rruns := checkRoleRuns(t, ctx, st, killed, victim)
	t.Logf("run %d: killed %s holding %d claims; claims freed after %v, first re-claimed after %v; %d journaled runs, %d role runs, none overlapping",
		run, victim, len(orphans), freed.Round(time.Millisecond), taken.Round(time.Millisecond), jruns, rruns)
	return freed.Round(time.Millisecond), taken.Round(time.Millisecond)
}

// foRun is one run of a node-role by one controller.
type foRun struct {
	owner      string
	start, end time.Time
	cut        bool // the kill interrupted it (its end is the kill)
}

// checkJournalHistory replays every journal and claim write of the run:
// each "running" record must be written while its writer holds the claim,
// each run ends with the record that releases the claim (or with the
// kill, for the victim), and runs of one node-role must not overlap.
func checkJournalHistory(t *testing.T, history []seenEvent, killed time.Time, victim string) int {
	t.Helper()
	claimPfx, journalPfx := graph.ClaimPrefix(foDeployment), "mason/graph/"+foDeployment+"/nr/"
	holder := map[string]string{}
	open := map[string]*foRun{}
	runs := map[string][]foRun{}
	// Within a revision (one Txn), apply the record before the claim's
	// release.
	sort.SliceStable(history, func(i, j int) bool {
		if history[i].Revision != history[j].Revision {
			return history[i].Revision < history[j].Revision
		}
		return history[i].Type == store.EventPut && history[j].Type == store.EventDelete
	})
	for _, ev := range history {
		switch {
		case strings.HasPrefix(ev.Key, claimPfx):
			id := strings.TrimPrefix(ev.Key, claimPfx)
			if ev.Type == store.EventPut {
				require.Empty(t, holder[id], "%s claimed by %s while %s holds it", id, ev.Value, holder[id])
				holder[id] = string(ev.Value)
				continue
			}
			if r := open[id]; r != nil {
				// Released without a final record: only a lease expiry
				// after the kill does that.
				require.Equal(t, victim, r.owner, "%s: %s's claim vanished mid-run", id, r.owner)
				require.True(t, ev.at.After(killed), "%s: %s's claim vanished before the kill", id, r.owner)
				r.end, r.cut = killed, true
				runs[id] = append(runs[id], *r)
				delete(open, id)
			}
			delete(holder, id)
		case strings.HasPrefix(ev.Key, journalPfx) && ev.Type == store.EventPut:
			e, err := graph.DecodeEntry(ev.Value)
			require.NoError(t, err)
			owner := holder[e.ID]
			require.NotEmpty(t, owner, "%s journaled %s with nobody holding its claim", e.ID, e.State)
			switch r := open[e.ID]; {
			case e.State == graph.StateRunning || e.State == graph.StateRetrying:
				if r == nil {
					open[e.ID] = &foRun{owner: owner, start: e.At}
				} else {
					require.Equal(t, r.owner, owner, "%s: a run changed hands", e.ID)
				}
			case e.State.Final() && r != nil:
				require.Equal(t, r.owner, owner, "%s: a run changed hands", e.ID)
				r.end = e.At
				runs[e.ID] = append(runs[e.ID], *r)
				delete(open, e.ID)
			}
		}
	}
	require.Empty(t, open, "runs never ended")
	n := 0
	for id, rs := range runs {
		n += len(rs)
		requireNoOverlap(t, "journal", id, rs, victim)
	}
	require.Len(t, runs, foNodeRoles, "every node-role ran")
	return n
}

// checkRoleRuns reads the intervals the roles recorded themselves. The
// victim's unfinished runs end at the kill.
func checkRoleRuns(t *testing.T, ctx context.Context, st store.Store, killed time.Time, victim string) int {
	t.Helper()
	ents, _, err := st.List(ctx, "runs/")
	require.NoError(t, err)
	runs := map[string][]foRun{}
	for _, e := range ents {
		parts := strings.Split(strings.TrimPrefix(e.Key, "runs/"), "/")
		require.Len(t, parts, 3, e.Key)
		start, err := strconv.ParseInt(parts[2], 10, 64)
		require.NoError(t, err)
		r := foRun{owner: parts[1], start: time.Unix(0, start)}
		if len(e.Value) == 0 {
			require.Equal(t, victim, r.owner, "only the killed controller leaves runs unfinished: %s", e.Key)
			r.end, r.cut = killed, true
		} else {
			end, err := strconv.ParseInt(string(e.Value), 10, 64)
			require.NoError(t, err)
			r.end = time.Unix(0, end)
		}
		runs[parts[0]] = append(runs[parts[0]], r)
	}
	require.Len(t, runs, foNodeRoles, "every node-role ran")
	for id, rs := range runs {
		requireNoOverlap(t, "roles' own records", id, rs, victim)
	}
	return len(ents)
}

// requireNoOverlap: runs of one node-role follow each other, and only a
// run of the killed controller (cut, or finished but not journaled) is
// ever followed by another.
func requireNoOverlap(t *testing.T, source, id string, rs []foRun, victim string) {
	t.Helper()
	sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
	for i := 1; i < len(rs); i++ {
		a, b := rs[i-1], rs[i]
		require.False(t, b.start.Before(a.end), "%s: %s ran in %s [%v, %v] and %s from %v at once",
			source, id, a.owner, a.start.Format(time.StampMicro), a.end.Format(time.StampMicro), b.owner, b.start.Format(time.StampMicro))
		require.Equal(t, victim, a.owner, "%s: %s ran again after %s's run, but only %s was killed", source, id, a.owner, victim)
	}
}

func readLog(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
