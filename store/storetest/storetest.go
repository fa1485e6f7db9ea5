// Package storetest is the contract suite every store backend must pass.
//
// A backend's test calls Run with a function that opens a fresh, empty
// store; the suite closes it when each subtest ends.
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return mem.New() })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
)

// Opener returns a new, empty store for one subtest.
type Opener func(t *testing.T) store.Store

// Run runs the whole contract suite against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"ListPrefix", testListPrefix},
		{"CompareAndSwap", testCAS},
		{"TxnAtomic", testTxnAtomic},
		{"ConcurrentCASRace", testConcurrentCAS},
		{"WatchOrdering", testWatchOrdering},
		{"WatchReplay", testWatchReplay},
		{"WatchClosesOnCancel", testWatchCancel},
		{"LeaseExpiry", testLeaseExpiry},
		{"LeaseKeepAliveAndRevoke", testLeaseKeepAlive},
		{"LockMutualExclusion", testLock},
		{"LockHolder", testLockHolder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testGetPutDelete(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.Get(ctx, "a")
	require.ErrorIs(t, err, store.ErrNotFound)

	r1, err := s.Put(ctx, "a", []byte("1"))
	require.NoError(t, err)
	e, err := s.Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "1", string(e.Value))
	require.Equal(t, r1, e.Revision)

	r2, err := s.Put(ctx, "a", []byte("2"))
	require.NoError(t, err)
	require.Greater(t, r2, r1, "revisions must grow")

	empty, err := s.Put(ctx, "empty", nil)
	require.NoError(t, err)
	e, err = s.Get(ctx, "empty")
	require.NoError(t, err)
	require.Equal(t, empty, e.Revision)
	require.Empty(t, e.Value)

	require.NoError(t, s.Delete(ctx, "a"))
	_, err = s.Get(ctx, "a")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.Delete(ctx, "a"), "deleting a missing key is not an error")
}

func testListPrefix(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, k := range []string{"jobs/b", "jobs/a", "jobsx", "other/a", "jobs/c/d"} {
		_, err := s.Put(ctx, k, []byte(k))
		require.NoError(t, err)
	}
	ents, rev, err := s.List(ctx, "jobs/")
	require.NoError(t, err)
	var keys []string
	for _, e := range ents {
		keys = append(keys, e.Key)
		require.Equal(t, e.Key, string(e.Value))
		require.LessOrEqual(t, e.Revision, rev)
	}
	require.Equal(t, []string{"jobs/a", "jobs/b", "jobs/c/d"}, keys)

	all, _, err := s.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 5)
}

func testCAS(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r1, err := s.CompareAndSwap(ctx, "k", 0, []byte("v1"))
	require.NoError(t, err, "create-only CAS on a missing key")

	_, err = s.CompareAndSwap(ctx, "k", 0, []byte("again"))
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, store.ErrConflict)
	require.Equal(t, "k", ce.Key)
	require.Equal(t, r1, ce.Have)

	r2, err := s.CompareAndSwap(ctx, "k", r1, []byte("v2"))
	require.NoError(t, err)
	_, err = s.CompareAndSwap(ctx, "k", r1, []byte("stale"))
	require.ErrorIs(t, err, store.ErrConflict)

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v2", string(e.Value))
	require.Equal(t, r2, e.Revision)
}

func testTxnAtomic(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	rx, err := s.Put(ctx, "x", []byte("x0"))
	require.NoError(t, err)

	rev, err := s.Txn(ctx, store.PutOp("a", []byte("1")), store.PutOp("b", []byte("2")), store.CheckOp("x", rx))
	require.NoError(t, err)
	a, err := s.Get(ctx, "a")
	require.NoError(t, err)
	b, err := s.Get(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, rev, a.Revision, "one transaction, one revision")
	require.Equal(t, rev, b.Revision)

	// A failing condition writes nothing at all.
	_, err = s.Txn(ctx, store.PutOp("a", []byte("changed")), store.DeleteOp("b"), store.CheckOp("x", rx+1000))
	require.ErrorIs(t, err, store.ErrConflict)
	a, err = s.Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "1", string(a.Value))
	_, err = s.Get(ctx, "b")
	require.NoError(t, err)

	_, err = s.Txn(ctx, store.PutOp("dup", nil), store.PutOp("dup", nil))
	require.Error(t, err, "a key written twice in one transaction is refused")

	// Refused before anything is written, in small and large transactions.
	before, rev, err := s.List(ctx, "")
	require.NoError(t, err)
	many := func(extra ...store.Op) []store.Op {
		ops := []store.Op{}
		for i := range 20 {
			ops = append(ops, store.PutOp(fmt.Sprintf("many/%d", i), nil))
		}
		return append(ops, extra...)
	}
	for _, tc := range []struct {
		name string
		ops  []store.Op
		msg  string
	}{
		{"empty key", []store.Op{store.PutOp("ok", nil), store.PutOp("", nil)}, "empty key"},
		{"put and delete of one key", []store.Op{store.PutOp("k", nil), store.DeleteOp("k")}, "written twice"},
		{"twice among many", many(store.DeleteOp("many/3")), "written twice"},
		{"unknown kind", []store.Op{{Kind: 99, Key: "k"}}, "unknown kind"},
	} {
		_, err := s.Txn(ctx, tc.ops...)
		require.ErrorContains(t, err, tc.msg, tc.name)
	}
	after, rev2, err := s.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.Equal(t, rev, rev2)
	// A condition on a key written in the same transaction is fine.
	ea, err := s.Get(ctx, "a")
	require.NoError(t, err)
	_, err = s.Txn(ctx, store.PutOp("a", []byte("2")), store.CheckOp("a", ea.Revision))
	require.NoError(t, err)
}

func testConcurrentCAS(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const workers, each = 8, 40
	_, err := s.Put(ctx, "counter", []byte("0"))
	require.NoError(t, err)
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				e, err := s.Get(ctx, "counter")
				if err != nil {
					errs <- err
					return
				}
				var n int
				fmt.Sscan(string(e.Value), &n)
				_, err = s.CompareAndSwap(ctx, "counter", e.Revision, []byte(fmt.Sprint(n+1)))
				switch {
				case err == nil:
					i++
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	e, err := s.Get(ctx, "counter")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(workers*each), string(e.Value), "no increment lost (%d conflicts retried)", conflicts.Load())
}

func testWatchOrdering(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ch, err := s.Watch(ctx, "w/", 0)
	require.NoError(t, err)
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, _ = s.Put(ctx, fmt.Sprintf("w/%d/%d", w, i), []byte("v"))
				_, _ = s.Put(ctx, "unwatched/x", []byte("v"))
			}
		}()
	}
	wg.Wait()
	require.NoError(t, s.Delete(ctx, "w/0/0"))

	var last int64
	seen := map[string]bool{}
	for n := 0; n < writers*each+1; n++ {
		select {
		case ev := <-ch:
			require.Greater(t, ev.Revision, last, "events arrive in revision order")
			last = ev.Revision
			require.Regexp(t, `^w/`, ev.Key)
			if n < writers*each {
				require.Equal(t, store.EventPut, ev.Type)
				require.False(t, seen[ev.Key], "each event once")
				seen[ev.Key] = true
			} else {
				require.Equal(t, store.EventDelete, ev.Type)
				require.Equal(t, "w/0/0", ev.Key)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events arrived", n, writers*each+1)
		}
	}
	require.Len(t, seen, writers*each)
}

func testWatchReplay(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.Put(ctx, "r/before", []byte("0"))
	require.NoError(t, err)
	_, rev, err := s.List(ctx, "r/")
	require.NoError(t, err)
	r1, err := s.Put(ctx, "r/a", []byte("1"))
	require.NoError(t, err)
	r2, err := s.Put(ctx, "r/b", []byte("2"))
	require.NoError(t, err)

	// Watching from just after the listing replays exactly what came after it.
	ch, err := s.Watch(ctx, "r/", rev+1)
	require.NoError(t, err)
	for _, want := range []struct {
		key string
		rev int64
	}{{"r/a", r1}, {"r/b", r2}} {
		select {
		case ev := <-ch:
			require.Equal(t, want.key, ev.Key)
			require.Equal(t, want.rev, ev.Revision)
		case <-time.After(5 * time.Second):
			t.Fatalf("replay of %s did not arrive", want.key)
		}
	}
	r3, err := s.Put(ctx, "r/c", []byte("3"))
	require.NoError(t, err)
	select {
	case ev := <-ch:
		require.Equal(t, "r/c", ev.Key, "live events follow the replay")
		require.Equal(t, r3, ev.Revision)
	case <-time.After(5 * time.Second):
		t.Fatal("live event after replay did not arrive")
	}
}

func testWatchCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	ch, err := s.Watch(ctx, "c/", 0)
	require.NoError(t, err)
	cancel()
	select {
	case _, ok := <-ch:
		require.False(t, ok, "no events were written, so the channel only closes")
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after cancel")
	}
}

func testLeaseExpiry(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.Put(ctx, "l/x", []byte("v"), store.WithLease(12345))
	require.ErrorIs(t, err, store.ErrLeaseNotFound, "writing with an unknown lease fails")

	id, err := s.Grant(ctx, time.Second)
	require.NoError(t, err)
	_, err = s.Put(ctx, "l/owned", []byte("v"), store.WithLease(id))
	require.NoError(t, err)
	_, err = s.Put(ctx, "l/plain", []byte("v"))
	require.NoError(t, err)
	e, err := s.Get(ctx, "l/owned")
	require.NoError(t, err)
	require.Equal(t, id, e.Lease)

	ch, err := s.Watch(ctx, "l/", 0)
	require.NoError(t, err)
	select {
	case ev := <-ch:
		require.Equal(t, store.EventDelete, ev.Type)
		require.Equal(t, "l/owned", ev.Key)
	case <-time.After(10 * time.Second):
		t.Fatal("leased key not deleted after its lease expired")
	}
	_, err = s.Get(ctx, "l/owned")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Get(ctx, "l/plain")
	require.NoError(t, err, "keys without the lease stay")
	require.ErrorIs(t, s.KeepAlive(ctx, id), store.ErrLeaseNotFound)
}

func testLeaseKeepAlive(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	id, err := s.Grant(ctx, time.Second)
	require.NoError(t, err)
	_, err = s.Put(ctx, "k/alive", []byte("v"), store.WithLease(id))
	require.NoError(t, err)
	// Renewed for three TTLs, the key must survive them.
	for i := 0; i < 9; i++ {
		time.Sleep(time.Second / 3)
		require.NoError(t, s.KeepAlive(ctx, id))
	}
	_, err = s.Get(ctx, "k/alive")
	require.NoError(t, err)

	require.NoError(t, s.Revoke(ctx, id))
	_, err = s.Get(ctx, "k/alive")
	require.ErrorIs(t, err, store.ErrNotFound, "revoke deletes the lease's keys at once")
}

func testLock(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var inside, maxInside atomic.Int32
	var mu sync.Mutex
	var fences []int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				l, err := store.Acquire(ctx, s, "locks/deploy", fmt.Sprintf("worker-%d", w), 2*time.Second)
				if err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				// A fenced write succeeds while the lock is held.
				if _, err := s.Txn(ctx, store.PutOp("locks/data", []byte("x")), store.CheckOp(l.Key(), l.Fence())); err != nil {
					errs <- err
				}
				mu.Lock()
				fences = append(fences, l.Fence())
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				if err := l.Release(ctx); err != nil {
					errs <- err
					return
				}
				// ...and fails after the lock is released.
				if _, err := s.Txn(ctx, store.PutOp("locks/data", []byte("late")), store.CheckOp(l.Key(), l.Fence())); !errors.Is(err, store.ErrConflict) {
					errs <- fmt.Errorf("fenced write after release: got %v, want a conflict", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, maxInside.Load(), "never two holders at once")
	require.Len(t, fences, 20)
	uniq := map[int64]bool{}
	for _, f := range fences {
		uniq[f] = true
	}
	require.Len(t, uniq, 20, "every holder gets its own fencing token")
}

// testLockHolder: a held lock names its holder, as recorded when it was
// taken, to anyone who tries to take it.
func testLockHolder(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	l, err := store.Acquire(ctx, s, "locks/holder", "first", 5*time.Second)
	require.NoError(t, err)
	_, err = store.TryAcquire(ctx, s, "locks/holder", "second", 5*time.Second)
	var le *store.LockedError
	require.ErrorAs(t, err, &le)
	require.ErrorIs(t, err, store.ErrLocked)
	require.Equal(t, l.Holder(), le.Holder)
	require.True(t, le.Holder.ThisProcess())
	require.NoError(t, l.Release(ctx))
	l2, err := store.TryAcquire(ctx, s, "locks/holder", "second", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "second", l2.Holder().Owner)
	require.NoError(t, l2.Release(ctx))
}
