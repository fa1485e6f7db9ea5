package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// Past the history bound, old revisions are compacted and recent ones still
// replay in full.
func TestHistoryCompaction(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	var revs []int64
	for i := 0; i < 20000; i++ {
		r, err := s.Put(ctx, fmt.Sprintf("k/%d", i%10), []byte("v"))
		require.NoError(t, err)
		revs = append(revs, r)
	}
	_, err := s.Watch(ctx, "k/", revs[0])
	require.True(t, errors.Is(err, store.ErrCompacted), "the oldest revision is compacted: %v", err)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := revs[len(revs)-5000]
	ch, err := s.Watch(wctx, "k/", from)
	require.NoError(t, err)
	for i := 0; i < 5000; i++ {
		ev := <-ch
		require.Equal(t, from+int64(i), ev.Revision)
	}
}

func BenchmarkPutWithFullHistory(b *testing.B) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 20000; i++ {
		_, _ = s.Put(ctx, "warm", nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = s.Put(ctx, "k", []byte("v"))
	}
}

// A plain put over a key written with a lease detaches it from the lease:
// revoking the lease later leaves the key. Plain puts skip reading the old
// record only while no lease exists, so both paths are exercised.
func TestPutDetachesLease(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	_, err := s.Put(ctx, "plain", []byte("1")) // no lease granted yet
	require.NoError(t, err)
	id, err := s.Grant(ctx, time.Minute)
	require.NoError(t, err)
	_, err = s.Txn(ctx, store.PutOp("a", []byte("v"), store.WithLease(id)), store.PutOp("b", []byte("v"), store.WithLease(id)))
	require.NoError(t, err)
	_, err = s.Txn(ctx, store.PutOp("a", []byte("w")), store.PutOp("plain", []byte("2")))
	require.NoError(t, err)
	require.NoError(t, s.Revoke(ctx, id))
	e, err := s.Get(ctx, "a")
	require.NoError(t, err, "a was rewritten without the lease and must survive its revocation")
	require.Equal(t, "w", string(e.Value))
	require.Zero(t, e.Lease)
	_, err = s.Get(ctx, "b")
	require.ErrorIs(t, err, store.ErrNotFound, "b still belonged to the lease")
	_, err = s.Txn(ctx, store.PutOp("a", []byte("x")), store.PutOp("a", []byte("y")))
	require.ErrorContains(t, err, "written twice")
}

// A transaction larger than the whole history is compacted as a whole:
// a replay never starts in the middle of one.
func TestHistoryDropsWholeRevisions(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	small, err := s.Put(ctx, "k/before", []byte("v"))
	require.NoError(t, err)
	ops := make([]store.Op, 20000)
	for i := range ops {
		ops[i] = store.PutOp(fmt.Sprintf("k/%05d", i), []byte("v"))
	}
	big, err := s.Txn(ctx, ops...)
	require.NoError(t, err)
	for _, from := range []int64{small, big} {
		_, err = s.Watch(ctx, "k/", from)
		require.ErrorIs(t, err, store.ErrCompacted, "revision %d", from)
	}
	after, err := s.Put(ctx, "k/after", []byte("v"))
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, "k/", big+1)
	require.NoError(t, err)
	ev := <-ch
	require.Equal(t, after, ev.Revision)
	require.Equal(t, "k/after", ev.Key)
}
