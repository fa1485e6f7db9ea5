package claim_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	"github.com/masonops/mason/store/mem"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// backend opens stores that share state: two controllers each get their
// own store (their own etcd client) on the same data.
type backend struct {
	name string
	open func(t *testing.T) func(t *testing.T) store.Store
}

var backends = []backend{
	{"mem", func(t *testing.T) func(t *testing.T) store.Store {
		s := mem.New()
		t.Cleanup(func() { _ = s.Close() })
		return func(*testing.T) store.Store { return s }
	}},
	{"etcd", func(t *testing.T) func(t *testing.T) store.Store {
		c := etcdtest.Start(t, etcdtest.Options{})
		return func(t *testing.T) store.Store { return openEtcd(t, c.Endpoints()) }
	}},
}

func openEtcd(t *testing.T, eps []string) store.Store {
	t.Helper()
	s, err := etcdstore.Open(ctxT(t, 10*time.Second), etcdstore.Options{Endpoints: eps, Prefix: "mason/graph/test/"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func session(t *testing.T, st store.Store, owner string, ttl time.Duration) *claim.Session {
	t.Helper()
	s, err := claim.NewSession(ctxT(t, 10*time.Second), st, claim.Options{Prefix: "claims/", Owner: owner, TTL: ttl})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// TestExclusive races two controllers for the same node-roles: each is
// claimed by exactly one, and the loser learns who holds it.
func TestExclusive(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			open := b.open(t)
			sessions := []*claim.Session{
				session(t, open(t), "ctl-a", 3*time.Second),
				session(t, open(t), "ctl-b", 3*time.Second),
			}
			const n = 50
			winners := make([][]string, n)
			var mu sync.Mutex
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			for _, s := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						id := fmt.Sprintf("node-%02d/docker", i)
						_, err := s.Claim(ctx, id)
						var held *claim.HeldError
						switch {
						case err == nil:
							mu.Lock()
							winners[i] = append(winners[i], s.Owner())
							mu.Unlock()
						case errors.As(err, &held):
							if held.Owner == s.Owner() || held.ID != id || !errors.Is(err, store.ErrConflict) {
								errs <- fmt.Errorf("bad HeldError %+v for %s", held, s.Owner())
							}
						default:
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			for i, w := range winners {
				require.Len(t, w, 1, "node-%02d claimed by %v", i, w)
			}
		})
	}
}

// TestFencedAfterLoss pauses a controller past its lease (its lease is
// revoked under it, as expiry would): its session reports the loss, the
// other controller claims the work, and the first one's late journal write
// is refused instead of overwriting the new owner's record.
func TestFencedAfterLoss(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			open := b.open(t)
			stA, stB := open(t), open(t)
			a := session(t, stA, "ctl-a", 2*time.Second)
			bs := session(t, stB, "ctl-b", 2*time.Second)

			ca, err := a.Claim(ctx, "web-1/docker")
			require.NoError(t, err)
			_, err = ca.Txn(ctx, store.PutOp("journal/web-1/docker", []byte("running by a")))
			require.NoError(t, err)
			_, err = bs.Claim(ctx, "web-1/docker")
			require.ErrorIs(t, err, store.ErrConflict, "held by a")

			require.NoError(t, stB.Revoke(ctx, a.Lease()), "a's lease ends under it")
			select {
			case <-a.Lost():
			case <-time.After(5 * time.Second):
				t.Fatal("session a did not notice its lease was gone")
			}
			cb, err := bs.Claim(ctx, "web-1/docker")
			require.NoError(t, err, "b takes over the freed work")
			require.Greater(t, cb.Rev(), ca.Rev(), "the new claim's fencing token is larger")
			_, err = cb.Txn(ctx, store.PutOp("journal/web-1/docker", []byte("running by b")))
			require.NoError(t, err)

			_, err = ca.Txn(ctx, store.PutOp("journal/web-1/docker", []byte("succeeded by a")))
			require.ErrorIs(t, err, claim.ErrLost, "a's late write is fenced off")
			e, err := stB.Get(ctx, "journal/web-1/docker")
			require.NoError(t, err)
			require.Equal(t, "running by b", string(e.Value))

			_, err = a.Claim(ctx, "web-2/docker")
			require.ErrorIs(t, err, claim.ErrLost, "a lost session claims nothing more")
			require.NoError(t, ca.Release(ctx), "releasing a lost claim is not an error")
			_, err = stB.Get(ctx, bs.Key("web-1/docker"))
			require.NoError(t, err, "and does not delete the new owner's claim")
		})
	}
}

// TestFences writes one journal batch for several node-roles, fenced by
// all their claims, as graph's journal writer does.
func TestFences(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			st := b.open(t)(t)
			s := session(t, st, "ctl-a", 3*time.Second)
			for _, id := range []string{"a", "b"} {
				_, err := s.Claim(ctx, id)
				require.NoError(t, err)
			}
			batch := func(ids ...string) error {
				var ops []store.Op
				for _, id := range ids {
					ops = append(ops, store.PutOp("journal/"+id, []byte("rec")))
				}
				_, err := st.Txn(ctx, append(ops, s.Fences(ids...)...)...)
				return err
			}
			require.NoError(t, batch("a", "b"))
			require.Len(t, s.Fences("a", "b", "a"), 2, "one fence per id")
			err := batch("a", "c")
			require.ErrorIs(t, err, store.ErrConflict, "c is not claimed")
			id, ok := s.LostID(err)
			require.True(t, ok)
			require.Equal(t, "c", id)
			_, err = st.Get(ctx, "journal/c")
			require.ErrorIs(t, err, store.ErrNotFound, "nothing of the failed batch was written")

			require.NoError(t, s.Held("b").Release(ctx))
			require.ErrorIs(t, batch("b"), store.ErrConflict, "released claims fence nothing")
		})
	}
}

const childEnv = "MASON_CLAIM_CHILD_ENDPOINTS"

// claimant is the controller process TestTakeoverAfterKill starts and
// kills; TestMain runs it when childEnv is set.
func claimant(t childtest.T) {
	eps := os.Getenv(childEnv)
	ctx := context.Background()
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: strings.Split(eps, ","), Prefix: "mason/graph/test/"})
	require.NoError(t, err)
	s, err := claim.NewSession(ctx, st, claim.Options{Prefix: "claims/", Owner: fmt.Sprintf("child pid %d", os.Getpid()), TTL: 2 * time.Second})
	require.NoError(t, err)
	var revs []string
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("node-%02d/etcd", i)
		c, err := s.Claim(ctx, id)
		require.NoError(t, err)
		_, err = c.Txn(ctx, store.PutOp("journal/"+id, []byte("running by child")))
		require.NoError(t, err)
		revs = append(revs, fmt.Sprint(c.Rev()))
	}
	fmt.Printf("claimed %s\n", strings.Join(revs, ","))
	<-s.Lost() // until killed
}

// TestTakeoverAfterKill runs a controller in a child process that claims
// 20 node-roles, SIGKILLs it, and takes the work over: the claims become
// free once the child's lease expires, and the child's fencing tokens no
// longer let anything write. The takeover time is logged.
func TestTakeoverAfterKill(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := ctxT(t, 60*time.Second)
	st := openEtcd(t, c.Endpoints())

	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(c.Endpoints(), ","))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_ = cmd.Wait()
		close(exited)
	}()
	var childRevs []string
	for childRevs == nil {
		select {
		case l := <-lines:
			if rest, ok := strings.CutPrefix(l, "claimed "); ok {
				childRevs = strings.Split(rest, ",")
			}
		case <-exited:
			t.Fatal("child controller exited before claiming")
		case <-time.After(30 * time.Second):
			t.Fatal("child controller did not claim in 30s")
		}
	}
	require.Len(t, childRevs, 20)

	me := session(t, st, "parent", 2*time.Second)
	_, err = me.Claim(ctx, "node-00/etcd")
	var held *claim.HeldError
	require.ErrorAs(t, err, &held, "the child holds its work while alive")
	require.Contains(t, held.Owner, "child pid")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	<-exited

	var first, slowest time.Duration
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("node-%02d/etcd", i)
		require.NoError(t, me.WaitFree(ctx, id))
		cl, err := me.Claim(ctx, id)
		require.NoError(t, err)
		slowest = max(slowest, time.Since(killed))
		if i == 0 {
			first = slowest
		}

		var stale int64
		_, err = fmt.Sscan(childRevs[i], &stale)
		require.NoError(t, err)
		require.Greater(t, cl.Rev(), stale)
		_, err = st.Txn(ctx, store.PutOp("journal/"+id, []byte("late write by child")), store.CheckOp(me.Key(id), stale))
		require.ErrorIs(t, err, store.ErrConflict, "the dead controller's fence no longer holds")
		_, err = cl.Txn(ctx, store.PutOp("journal/"+id, []byte("running by parent")))
		require.NoError(t, err)
	}
	t.Logf("first claim taken over %v, all 20 %v after SIGKILL (session TTL 2s)", first.Round(time.Millisecond), slowest.Round(time.Millisecond))
	// All 20 claims live under the dead session's one lease, so they are
	// freed together, within the TTL plus a second (the README's bound);
	// the later ones wait only for this test's own fenced writes.
	require.LessOrEqual(t, first, 2*time.Second+time.Second, "the dead controller's work is claimed again within the session TTL plus a second")
}
