package store_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// hangingStore is a store whose KeepAlive hangs until its context ends
// once hang is set: a store that stopped answering.
type hangingStore struct {
	store.Store
	hang atomic.Bool
}

func (s *hangingStore) KeepAlive(ctx context.Context, id store.LeaseID) error {
	if s.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Store.KeepAlive(ctx, id)
}

func newMem(t *testing.T) store.Store {
	s := mem.New()
	t.Cleanup(func() { s.Close() })
	return s
}

// A lock whose store stops answering renewals notices by its own
// deadline, instead of waiting on the hung call past its TTL.
func TestLockNoticesHungRenewal(t *testing.T) {
	ctx := context.Background()
	s := &hangingStore{Store: newMem(t)}
	const ttl = 600 * time.Millisecond
	l, err := store.Acquire(ctx, s, "locks/a", "test", ttl)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	require.NoError(t, l.Err())

	s.hang.Store(true)
	hungAt := time.Now()
	select {
	case <-l.Lost():
	case <-time.After(10 * ttl):
		t.Fatal("the lock did not notice that its lease could not be renewed")
	}
	require.ErrorIs(t, l.Err(), store.ErrLeaseLost)
	require.ErrorContains(t, l.Err(), "may have expired")
	// The lease was last renewed before the store hung, so its deadline,
	// and the moment Lost closed, is at most one TTL after that.
	require.WithinDuration(t, hungAt, time.Now(), 2*ttl, "Lost closes at the lease's deadline, not waiting on the hung call")
}

// A Keeper whose lease the store no longer knows is lost at once.
func TestKeeperLeaseGone(t *testing.T) {
	ctx := context.Background()
	s := newMem(t)
	k, err := store.GrantKept(ctx, s, 300*time.Millisecond)
	require.NoError(t, err)
	defer k.Stop()
	require.True(t, k.Deadline().After(time.Now()))
	require.NoError(t, s.Revoke(ctx, k.ID()))
	select {
	case <-k.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("a revoked lease was not noticed")
	}
	require.ErrorIs(t, k.Err(), store.ErrLeaseLost)
	require.ErrorIs(t, k.Err(), store.ErrLeaseNotFound)
}

// A kept lease outlives many TTLs; Stop ends the renewals and it expires.
func TestKeeperRenews(t *testing.T) {
	ctx := context.Background()
	s := newMem(t)
	const ttl = 300 * time.Millisecond
	k, err := store.GrantKept(ctx, s, ttl)
	require.NoError(t, err)
	_, err = s.Put(ctx, "kept", []byte("x"), store.WithLease(k.ID()))
	require.NoError(t, err)
	time.Sleep(4 * ttl)
	_, err = s.Get(ctx, "kept")
	require.NoError(t, err, "the key lives while the lease is kept")
	require.NoError(t, k.Err())
	k.Stop()
	k.Stop() // twice is fine
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, "kept")
		return errors.Is(err, store.ErrNotFound)
	}, 10*ttl, ttl/10, "stopped, the lease expires")
}

func TestLockHolder(t *testing.T) {
	ctx := context.Background()
	s := newMem(t)
	l, err := store.Acquire(ctx, s, "locks/nodes", "mason apply", 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	host, _ := os.Hostname()
	h := l.Holder()
	require.Equal(t, "mason apply", h.Owner)
	require.Equal(t, os.Getpid(), h.PID)
	require.Equal(t, host, h.Host)
	require.WithinDuration(t, time.Now(), h.Since, time.Minute)
	require.True(t, h.ThisProcess())

	t.Run("try while held", func(t *testing.T) {
		_, err := store.TryAcquire(ctx, s, "locks/nodes", "second", 5*time.Second)
		require.ErrorIs(t, err, store.ErrLocked)
		var le *store.LockedError
		require.ErrorAs(t, err, &le)
		require.Equal(t, h, le.Holder, "the holder as recorded when the lock was taken")
		require.Contains(t, err.Error(), `lock "locks/nodes" is already held by this process (mason apply) (pid`)
		require.Contains(t, err.Error(), host)
	})
	t.Run("wait runs out", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := store.Acquire(wctx, s, "locks/nodes", "second", 5*time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, store.ErrLocked)
		var le *store.LockedError
		require.ErrorAs(t, err, &le)
		require.Equal(t, "mason apply", le.Holder.Owner)
	})
	t.Run("free again", func(t *testing.T) {
		require.NoError(t, l.Release(ctx))
		l2, err := store.TryAcquire(ctx, s, "locks/nodes", "second", 5*time.Second)
		require.NoError(t, err)
		require.Greater(t, l2.Fence(), l.Fence())
		require.NoError(t, l2.Release(ctx))
	})
	t.Run("another process", func(t *testing.T) {
		other := store.Holder{Owner: "ctl-2", PID: os.Getpid() + 1, Host: "host-b", Since: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
		_, err := s.Put(ctx, "locks/other", other.Marshal())
		require.NoError(t, err)
		_, err = store.TryAcquire(ctx, s, "locks/other", "me", time.Second)
		require.EqualError(t, err, `lock "locks/other" is held by ctl-2 (pid `+itoa(os.Getpid()+1)+` on host-b, since 2026-12-01 10:00:00 UTC)`)
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseHolder(t *testing.T) {
	tests := []struct {
		in   string
		want store.Holder
	}{
		{"controller-1", store.Holder{Owner: "controller-1"}}, // written by an older version
		{`{"owner":"a","pid":7,"host":"h","since":"2026-12-01T10:00:00Z"}`, store.Holder{Owner: "a", PID: 7, Host: "h", Since: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}},
		{"{not json", store.Holder{Owner: "{not json"}},
		{"", store.Holder{}},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, store.ParseHolder([]byte(tc.in)), tc.in)
	}
	require.Equal(t, "an unknown holder", store.Holder{}.String())
}
