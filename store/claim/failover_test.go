package claim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/claim"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// The protocol graph's executor is meant to follow with several
// controllers, exercised here with a stand-in executor (workerLoop) in
// child processes, so graph can rely on it before it is wired in:
// claim a node-role, journal "running" fenced by the claim, run, journal
// "succeeded" fenced by the claim, release.

const (
	failoverNodeRoles = 200
	failoverTTL       = 3 * time.Second
	workerEnv         = "MASON_CLAIM_WORKER" // endpoints|prefix|owner
)

// jrec is the stand-in journal record of one node-role.
type jrec struct {
	State string `json:"state"` // running, succeeded
	Owner string `json:"owner"`
}

// interval is one run of a node-role by one controller; End is 0 while it
// runs (or if its controller was killed).
type interval struct {
	Owner string `json:"owner"`
	Start int64  `json:"start"`
	End   int64  `json:"end,omitempty"`
}

func roleDuration(id string) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(id))
	return time.Duration(50+h.Sum32()%151) * time.Millisecond // 50-200ms
}

// workerProcess is the controller process TestFailoverProtocol starts and
// kills; TestMain runs it when workerEnv is set.
func workerProcess(t childtest.T) {
	cfg := os.Getenv(workerEnv)
	parts := strings.Split(cfg, "|")
	require.Len(t, parts, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: strings.Split(parts[0], ","), Prefix: parts[1]})
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, workerLoop(ctx, st, parts[2]))
}

// workerLoop runs node-roles until every one has succeeded, four at a time.
func workerLoop(ctx context.Context, st store.Store, owner string) error {
	sess, err := claim.NewSession(ctx, st, claim.Options{Prefix: "claims/", Owner: owner, TTL: failoverTTL})
	if err != nil {
		return err
	}
	defer sess.Close(context.Background())
	changes, err := st.Watch(ctx, "claims/", 0)
	if err != nil {
		return err
	}
	slots := make(chan struct{}, 4)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	var offset int
	fmt.Sscanf(owner[strings.LastIndexByte(owner, '-')+1:], "%d", &offset)
	for {
		select {
		case err := <-errc:
			return err
		case <-sess.Lost():
			return errors.New("session lost")
		default:
		}
		ents, _, err := st.List(ctx, "journal/")
		if err != nil {
			return err
		}
		done := map[string]bool{}
		var orphans []string // journaled running: a dead controller's work first
		for _, e := range ents {
			var r jrec
			if json.Unmarshal(e.Value, &r) != nil {
				continue
			}
			id := e.Key[len("journal/"):]
			switch r.State {
			case "succeeded":
				done[id] = true
			case "running":
				orphans = append(orphans, id)
			}
		}
		if len(done) == failoverNodeRoles {
			return nil
		}
		order := orphans
		for i := 0; i < failoverNodeRoles; i++ {
			order = append(order, fmt.Sprintf("nr-%03d", (i+offset*67)%failoverNodeRoles))
		}
		for _, id := range order {
			if done[id] || sess.Held(id) != nil {
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // all slots busy: look again when one frees
			}
			c, err := sess.Claim(ctx, id)
			if err != nil {
				<-slots
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				return err
			}
			// The snapshot may be stale: someone may have finished it and
			// released the claim since.
			if e, err := st.Get(ctx, "journal/"+id); err == nil {
				var r jrec
				if json.Unmarshal(e.Value, &r) == nil && r.State == "succeeded" {
					_ = c.Release(ctx)
					<-slots
					continue
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
				if err := runOne(ctx, c, owner); err != nil {
					fail(fmt.Errorf("%s: %w", id, err))
				}
			}()
		}
		select {
		case <-changes:
		case <-freed:
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runOne runs one claimed node-role: journal running, run, journal
// succeeded, release. Every write is fenced by the claim.
func runOne(ctx context.Context, c *claim.Claim, owner string) error {
	id := c.ID()
	iv := interval{Owner: owner, Start: time.Now().UnixNano()}
	ivKey := fmt.Sprintf("intervals/%s/%s/%d", id, owner, iv.Start)
	put := func(state string) error {
		rec, _ := json.Marshal(jrec{State: state, Owner: owner})
		ivb, _ := json.Marshal(iv)
		_, err := c.Txn(ctx, store.PutOp("journal/"+id, rec), store.PutOp(ivKey, ivb))
		return err
	}
	if err := put("running"); err != nil {
		return err
	}
	time.Sleep(roleDuration(id)) // the role
	iv.End = time.Now().UnixNano()
	if err := put("succeeded"); err != nil {
		return err
	}
	return c.Release(ctx)
}

// TestFailoverProtocol runs three controller processes on one deployment
// of 200 node-roles (roles take 50-200ms), SIGKILLs the one holding the most
// claims mid-run, and checks that the survivors converge, that no
// node-role ever ran in two controllers at once, and how long the takeover
// took; five runs.
func TestFailoverProtocol(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	var takeovers []string
	for run := 1; run <= 5; run++ {
		freed, taken := failoverRun(t, c, run)
		takeovers = append(takeovers, fmt.Sprintf("freed %v / re-claimed %v", freed, taken))
	}
	t.Logf("after SIGKILL, 5 runs (session TTL %v): %s", failoverTTL, strings.Join(takeovers, "; "))
}

// failoverRun is one run; it returns how long after the kill the victim's
// claims were freed and its first orphan re-claimed (0: none to re-run).
func failoverRun(t *testing.T, c *etcdtest.Cluster, run int) (freed, takeover time.Duration) {
	ctx := ctxT(t, 2*time.Minute)
	prefix := fmt.Sprintf("failover/run-%d/", run)
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: prefix})
	require.NoError(t, err)
	defer st.Close()

	type child struct {
		owner string
		cmd   *exec.Cmd
		done  chan error
	}
	children := map[string]*child{}
	logDir := t.TempDir()
	for i := 0; i < 3; i++ {
		owner := fmt.Sprintf("ctl-%d-%d", run, i)
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
		cmd.Env = append(os.Environ(), workerEnv+"="+strings.Join(c.Endpoints(), ",")+"|"+prefix+"|"+owner)
		logf, err := os.Create(filepath.Join(logDir, owner+".log"))
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		ch := &child{owner: owner, cmd: cmd, done: make(chan error, 1)}
		go func() { ch.done <- cmd.Wait(); logf.Close() }()
		children[owner] = ch
		t.Cleanup(func() { _ = cmd.Process.Kill() })
	}

	// Mid-run: wait until a fifth of the work is done.
	require.Eventually(t, func() bool {
		ents, _, err := st.List(ctx, "journal/")
		return err == nil && countState(ents, "succeeded") >= failoverNodeRoles/5
	}, 60*time.Second, 20*time.Millisecond, "run %d: the controllers made no progress", run)

	// The victim: whoever holds the most claims. A single look can fall
	// between claims (every controller just released one, or a loaded
	// machine delayed them all), so look until someone holds one.
	victim := ""
	require.Eventually(t, func() bool {
		claims, _, err := st.List(ctx, "claims/")
		if err != nil {
			return false
		}
		held := map[string]int{}
		for _, e := range claims {
			held[string(e.Value)]++
		}
		for owner, n := range held {
			if victim == "" || n > held[victim] {
				victim = owner
			}
		}
		return victim != ""
	}, 30*time.Second, 5*time.Millisecond, "run %d: nobody holds a claim mid-run", run)
	// Kill it right after it journals the start of a node-role, so it dies
	// holding work (every role runs at least 50ms).
	_, jrev, err := st.List(ctx, "journal/")
	require.NoError(t, err)
	starts, err := st.Watch(ctx, "journal/", jrev+1)
	require.NoError(t, err)
	for started := false; !started; {
		select {
		case ev := <-starts:
			var r jrec
			started = ev.Type == store.EventPut && json.Unmarshal(ev.Value, &r) == nil && r.Owner == victim && r.State == "running"
		case <-time.After(30 * time.Second):
			t.Fatalf("run %d: %s started nothing more in 30s", run, victim)
		}
	}

	v := children[victim]
	require.NoError(t, v.cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	<-v.done

	// What the victim held when it died (it may have released some between
	// the listing above and the kill), and the revision to watch from.
	claims, rev, err := st.List(ctx, "claims/")
	require.NoError(t, err)
	victimIDs := map[string]bool{}
	for _, e := range claims {
		if string(e.Value) == victim {
			victimIDs[e.Key[len("claims/"):]] = true
		}
	}
	// Orphans are the victim's node-roles that must run again: it may have
	// journaled some as succeeded and died before releasing their claims.
	orphans := map[string]bool{}
	for id := range victimIDs {
		e, err := st.Get(ctx, "journal/"+id)
		var r jrec
		if err != nil || json.Unmarshal(e.Value, &r) != nil || r.State != "succeeded" {
			orphans[id] = true
		}
	}
	events, err := st.Watch(ctx, "claims/", rev+1)
	require.NoError(t, err)

	// Takeover: the victim's claims are freed when its lease expires, and
	// another controller claims one of its orphans.
	for (len(victimIDs) > 0 && freed == 0) || (len(orphans) > 0 && takeover == 0) {
		select {
		case ev := <-events:
			id := ev.Key[len("claims/"):]
			if ev.Type == store.EventDelete && victimIDs[id] && freed == 0 {
				freed = time.Since(killed)
			}
			if ev.Type == store.EventPut && orphans[id] && string(ev.Value) != victim {
				takeover = time.Since(killed)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("run %d: %s's %d claims: freed after %v, %d orphans not taken over in 30s", run, victim, len(victimIDs), freed, len(orphans))
		}
	}
	t.Logf("run %d: killed %s holding %d claims (%d to run again); claims freed after %v, first orphan re-claimed after %v",
		run, victim, len(victimIDs), len(orphans), freed.Round(time.Millisecond), takeover.Round(time.Millisecond))
	// The package's promise (doc.go; the README's "within the lease TTL
	// plus about a second" rests on it): a dead controller's claims are
	// deleted with its lease, at most a TTL after its last renewal, plus
	// etcd's lease expiry check. When the stand-in workers of this test
	// take the work again depends on their own polling, which is no part
	// of the package: that is only logged.
	require.LessOrEqual(t, freed, failoverTTL+time.Second, "run %d: the dead controller's claims are freed within the session TTL plus a second", run)

	for owner, ch := range children {
		if owner == victim {
			continue
		}
		select {
		case err := <-ch.done:
			require.NoError(t, err, "run %d: controller %s failed; its log:\n%s", run, owner, readFile(filepath.Join(logDir, owner+".log")))
		case <-time.After(60 * time.Second):
			t.Fatalf("run %d: controller %s did not converge", run, owner)
		}
	}

	ents, _, err := st.List(ctx, "journal/")
	require.NoError(t, err)
	require.Equal(t, failoverNodeRoles, countState(ents, "succeeded"), "run %d converged", run)
	checkNoOverlap(t, ctx, st, victim, killed)
	return freed.Round(time.Millisecond), takeover.Round(time.Millisecond)
}

func countState(ents []store.Entry, state string) int {
	n := 0
	for _, e := range ents {
		var r jrec
		if json.Unmarshal(e.Value, &r) == nil && r.State == state {
			n++
		}
	}
	return n
}

// checkNoOverlap reads every recorded run interval and checks that no
// node-role ran in two controllers at once. The killed controller's
// unfinished runs end at the kill.
func checkNoOverlap(t *testing.T, ctx context.Context, st store.Store, victim string, killed time.Time) {
	ents, _, err := st.List(ctx, "intervals/")
	require.NoError(t, err)
	byID := map[string][]interval{}
	cut := map[interval]bool{} // runs the kill interrupted
	for _, e := range ents {
		var iv interval
		require.NoError(t, json.Unmarshal(e.Value, &iv))
		if iv.End == 0 {
			require.Equal(t, victim, iv.Owner, "only the killed controller leaves runs unfinished: %s", e.Key)
			iv.End = killed.UnixNano()
			cut[iv] = true
		}
		id := strings.SplitN(e.Key[len("intervals/"):], "/", 2)[0]
		byID[id] = append(byID[id], iv)
	}
	require.Len(t, byID, failoverNodeRoles)
	reruns := 0
	for id, ivs := range byID {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start < ivs[j].Start })
		for i := 1; i < len(ivs); i++ {
			reruns++
			require.LessOrEqual(t, ivs[i-1].End, ivs[i].Start, "%s ran in %s and %s at once", id, ivs[i-1].Owner, ivs[i].Owner)
			require.True(t, cut[ivs[i-1]], "%s ran again after a run that was not cut by the kill", id)
		}
	}
	t.Logf("%d node-roles ran, %d of them again after the kill, never two at once", len(byID), reruns)
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
