package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// TestWatchCompacted checks that a watch from a revision the cluster has
// compacted away fails with store.ErrCompacted, and that a watch from the
// compaction point itself still replays.
func TestWatchCompacted(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := ctxT(t, 30*time.Second)
	s := open(t, c.Endpoints(), "compact/")
	r1, err := s.Put(ctx, "k", []byte("1"))
	require.NoError(t, err)
	r2, err := s.Put(ctx, "k", []byte("2"))
	require.NoError(t, err)
	r3, err := s.Put(ctx, "k", []byte("3"))
	require.NoError(t, err)
	_, err = s.Client().Compact(ctx, r2)
	require.NoError(t, err)

	_, err = s.Watch(ctx, "", r1)
	require.ErrorIs(t, err, store.ErrCompacted)

	ch, err := s.Watch(ctx, "", r2)
	require.NoError(t, err, "the compaction revision itself is still available")
	for _, want := range []int64{r2, r3} {
		select {
		case ev := <-ch:
			require.Equal(t, want, ev.Revision)
		case <-time.After(5 * time.Second):
			t.Fatalf("replay of revision %d did not arrive", want)
		}
	}
}

// TestClusterMemberKilled runs a writer, a watcher and a lock holder
// against a 3-member cluster and kills the raft leader with SIGKILL in the
// middle. The store must keep working through the other two members: every
// write lands, the watcher sees every write in revision order, and the lock
// (a lease kept alive across the election) is not lost.
func TestClusterMemberKilled(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	ctx := ctxT(t, 90*time.Second)
	s := open(t, c.Endpoints(), "ha/")

	_, startRev, err := s.List(ctx, "")
	require.NoError(t, err)
	events, err := s.Watch(ctx, "data/", startRev+1)
	require.NoError(t, err)
	lock, err := store.Acquire(ctx, s, "locks/controller", "controller-1", 2*time.Second)
	require.NoError(t, err)

	const writes = 300
	killAt := writes / 3
	var (
		failed   int // write attempts that returned an error
		firstErr error
		longest  time.Duration    // slowest write, retries included
		retried  = map[int]bool{} // writes that needed more than one attempt
		killed   = make(chan *etcdtest.Member, 1)
		killedAt time.Time
	)
	for i := 0; i < writes; i++ {
		if i == killAt {
			leader, err := c.Leader(ctx)
			require.NoError(t, err)
			require.NoError(t, leader.Kill())
			require.False(t, leader.Running())
			killedAt = time.Now()
			killed <- leader
		}
		key := fmt.Sprintf("data/%04d", i)
		began := time.Now()
		for attempt := 0; ; attempt++ {
			// A proposal in flight to the dying leader is lost and etcd
			// only gives up on it after its request timeout (~6s here), so
			// bound each attempt, as a journal writer should.
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := s.Put(wctx, key, []byte(key))
			cancel()
			if err == nil {
				break
			}
			failed++
			retried[i] = true
			if firstErr == nil {
				firstErr = err
			}
			// An error during the election is ambiguous (the write may
			// have landed); a put of the same value is safe to repeat.
			require.Less(t, attempt, 20, "write %s still failing 20 attempts after the kill: %v", key, err)
			time.Sleep(100 * time.Millisecond)
		}
		longest = max(longest, time.Since(began))
	}
	dead := <-killed
	t.Logf("killed leader %s at write %d; %d write attempts failed (%d writes retried, first error: %v); slowest write %v; all %d writes done %v after the kill",
		dead.Name, killAt, failed, len(retried), firstErr, longest.Round(time.Millisecond), writes, time.Since(killedAt).Round(time.Millisecond))

	// Every write is there, read through the surviving members.
	ents, _, err := s.List(ctx, "data/")
	require.NoError(t, err)
	require.Len(t, ents, writes)
	for i, e := range ents {
		require.Equal(t, fmt.Sprintf("data/%04d", i), e.Key)
		require.Equal(t, e.Key, string(e.Value))
	}

	// The watcher saw every write in revision order; a key appears twice
	// only if its write was retried after an ambiguous failure.
	seen := map[string]int{}
	var last int64
	for len(seen) < writes {
		select {
		case ev, ok := <-events:
			require.True(t, ok, "watch closed after %d of %d keys", len(seen), writes)
			require.Greater(t, ev.Revision, last, "events in revision order")
			last = ev.Revision
			seen[ev.Key]++
		case <-time.After(10 * time.Second):
			t.Fatalf("watch stalled after %d of %d keys", len(seen), writes)
		}
	}
	for k, n := range seen {
		var i int
		_, err := fmt.Sscanf(k, "data/%d", &i)
		require.NoError(t, err)
		if n > 1 {
			require.True(t, retried[i], "key %s seen %d times but written once", k, n)
		}
	}

	// The lock's lease survived the election, so its fence still holds.
	select {
	case <-lock.Lost():
		t.Fatal("lock lost: its lease was not kept alive across the leader's death")
	default:
	}
	_, err = s.Txn(ctx, store.PutOp("data/fenced", []byte("x")), store.CheckOp(lock.Key(), lock.Fence()))
	require.NoError(t, err, "fenced write by the lock holder after the failover")
	require.NoError(t, lock.Release(ctx))
	_, err = s.Txn(ctx, store.PutOp("data/fenced", []byte("late")), store.CheckOp(lock.Key(), lock.Fence()))
	require.True(t, errors.Is(err, store.ErrConflict), "fenced write after release must conflict, got %v", err)
}

// TestWatchSurvivesMemberLoss watches through two followers only, kills
// one of them mid-stream, and checks that the watch goes on through the
// other without losing or repeating an event.
func TestWatchSurvivesMemberLoss(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	ctx := ctxT(t, 60*time.Second)
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	var followers []*etcdtest.Member
	for _, m := range c.Members {
		if m != leader {
			followers = append(followers, m)
		}
	}
	// The writer does not use the member that dies, so only the watch has
	// to fail over.
	writer := open(t, []string{leader.ClientURL, followers[1].ClientURL}, "w/")
	watcher := open(t, []string{followers[0].ClientURL, followers[1].ClientURL}, "w/")
	events, err := watcher.Watch(ctx, "", 0)
	require.NoError(t, err)

	const n = 200
	got := make(chan []int64, 1)
	go func() {
		var revs []int64
		for len(revs) < n {
			select {
			case ev, ok := <-events:
				if !ok {
					got <- revs
					return
				}
				revs = append(revs, ev.Revision)
			case <-time.After(15 * time.Second):
				got <- revs
				return
			}
		}
		got <- revs
	}()
	var want []int64
	for i := 0; i < n; i++ {
		if i == n/2 {
			require.NoError(t, followers[0].Kill())
		}
		rev, err := writer.Put(ctx, fmt.Sprintf("k%03d", i), []byte("v"))
		require.NoError(t, err, "the leader and one follower are a quorum")
		want = append(want, rev)
	}
	require.Equal(t, want, <-got, "every event once, in order, across the member's death")
}
