package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// The store keeps copies of what a Txn put: the caller may reuse the
// buffer its values were sliced from at once, and neither reads nor
// watchers (live or replaying) see the change. Values of one transaction
// share blocks, so appending to a value read back must not write into its
// neighbour.
func TestTxnCopiesValues(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live, err := s.Watch(ctx, "v/", 0)
	require.NoError(t, err)

	const keys = 300
	want := map[int64]map[string]string{} // revision -> key -> value
	put := func(round int) int64 {
		buf := make([]byte, 0, keys*64)
		ops := make([]store.Op, 0, keys)
		vals := map[string]string{}
		for i := range keys {
			k := fmt.Sprintf("v/%03d", i)
			v := fmt.Sprintf("round %d value %d %s", round, i, strings.Repeat("x", i%50))
			at := len(buf)
			buf = append(buf, v...)
			ops = append(ops, store.PutOp(k, buf[at:len(buf):len(buf)]))
			vals[k] = v
		}
		ops = append(ops, store.PutOp("v/nil", nil))
		vals["v/nil"] = ""
		rev, err := s.Txn(ctx, ops...)
		require.NoError(t, err)
		clear(buf[:cap(buf)]) // the caller reuses its buffer
		want[rev] = vals
		return rev
	}
	first := put(1)
	second := put(2)

	for i := range keys {
		k := fmt.Sprintf("v/%03d", i)
		e, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, want[second][k], string(e.Value), k)
		require.Equal(t, second, e.Revision)
		_ = append(e.Value, "spilled"...) // must not reach the next key
	}
	for i := range keys {
		k := fmt.Sprintf("v/%03d", i)
		e, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, want[second][k], string(e.Value), "%s after appending to the values read", k)
	}
	e, err := s.Get(ctx, "v/nil")
	require.NoError(t, err)
	require.NotNil(t, e.Value, "a put of nil stores an empty value")
	require.Empty(t, e.Value)

	check := func(name string, ch <-chan store.Event, n int) {
		for range n {
			ev := <-ch
			require.Equal(t, store.EventPut, ev.Type)
			v, ok := want[ev.Revision][ev.Key]
			require.True(t, ok, "%s: unexpected event %s at %d", name, ev.Key, ev.Revision)
			require.Equal(t, v, string(ev.Value), "%s: %s at %d", name, ev.Key, ev.Revision)
		}
	}
	check("live watcher", live, 2*(keys+1))
	replay, err := s.Watch(ctx, "v/", first)
	require.NoError(t, err)
	check("replay", replay, 2*(keys+1))
}

// Values larger than a shared block, and a transaction mixing them with
// small ones, deletes and conditions, come back whole.
func TestTxnLargeAndMixedValues(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	big := []byte(strings.Repeat("B", 100<<10))
	_, err := s.Put(ctx, "gone", []byte("x"))
	require.NoError(t, err)
	rev, err := s.Txn(ctx,
		store.PutOp("small1", []byte("s1")),
		store.PutOp("big", big),
		store.DeleteOp("gone"),
		store.PutOp("new", []byte("n")).IfRevision(0),
		store.PutOp("small2", []byte("s2")),
	)
	require.NoError(t, err)
	big[0] = 'X'
	for k, v := range map[string]string{"small1": "s1", "small2": "s2", "new": "n", "big": strings.Repeat("B", 100<<10)} {
		e, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, v, string(e.Value), k)
		require.Equal(t, rev, e.Revision, k)
	}
	_, err = s.Get(ctx, "gone")
	require.ErrorIs(t, err, store.ErrNotFound)
	// A failed condition writes none of the transaction.
	_, err = s.Txn(ctx, store.PutOp("small1", []byte("changed")), store.PutOp("new", []byte("again")).IfRevision(0))
	require.ErrorIs(t, err, store.ErrConflict)
	e, err := s.Get(ctx, "small1")
	require.NoError(t, err)
	require.Equal(t, "s1", string(e.Value))
}

// A watcher reading while transactions keep coming sees every event once,
// in order, with its value as written, however its queue is reused.
func TestWatcherKeepsUpWithTxns(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx, "q/", 0)
	require.NoError(t, err)
	const txns, puts = 60, 100
	revs := make(chan int64, txns)
	go func() {
		defer close(revs)
		buf := make([]byte, 0, puts*32)
		ops := make([]store.Op, puts)
		for n := range txns {
			buf = buf[:0]
			for i := range ops {
				at := len(buf)
				buf = fmt.Appendf(buf, "txn %d put %d", n, i)
				ops[i] = store.PutOp(fmt.Sprintf("q/%02d", i), buf[at:])
			}
			rev, err := s.Txn(ctx, ops...)
			if err != nil {
				t.Error(err)
				return
			}
			clear(buf[:cap(buf)])
			revs <- rev
		}
	}()
	for n := range txns {
		rev, ok := <-revs
		require.True(t, ok, "the writer stopped at transaction %d", n)
		for i := range puts {
			ev := <-ch
			require.Equal(t, rev, ev.Revision)
			require.Equal(t, fmt.Sprintf("q/%02d", i), ev.Key)
			require.Equal(t, fmt.Sprintf("txn %d put %d", n, i), string(ev.Value))
		}
	}
}

// Reads report each key's lease, as written last: set by a put with one,
// cleared by a plain put or a delete.
func TestReadsReportLease(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	id, err := s.Grant(ctx, time.Minute)
	require.NoError(t, err)
	leaseOf := func(key string) (get, list store.LeaseID) {
		e, err := s.Get(ctx, key)
		require.NoError(t, err)
		ents, _, err := s.List(ctx, key)
		require.NoError(t, err)
		require.Len(t, ents, 1)
		return e.Lease, ents[0].Lease
	}
	_, err = s.Put(ctx, "l", []byte("1"), store.WithLease(id))
	require.NoError(t, err)
	g, l := leaseOf("l")
	require.Equal(t, []store.LeaseID{id, id}, []store.LeaseID{g, l})
	_, err = s.Put(ctx, "l", []byte("2"))
	require.NoError(t, err)
	g, l = leaseOf("l")
	require.Zero(t, g)
	require.Zero(t, l)
	_, err = s.Put(ctx, "l", []byte("3"), store.WithLease(id))
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, "l"))
	_, err = s.Put(ctx, "l", []byte("4"))
	require.NoError(t, err)
	g, l = leaseOf("l")
	require.Zero(t, g, "a delete forgets the lease")
	require.Zero(t, l)
}

// A transaction much larger than the store keeps what was there.
func TestLargeTxnKeepsEarlierKeys(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	early := map[string]int64{}
	for i := range 10 {
		k := fmt.Sprintf("early/%d", i)
		rev, err := s.Put(ctx, k, []byte(k))
		require.NoError(t, err)
		early[k] = rev
	}
	ops := make([]store.Op, 500)
	for i := range ops {
		ops[i] = store.PutOp(fmt.Sprintf("late/%03d", i), []byte("v"))
	}
	_, err := s.Txn(ctx, ops...)
	require.NoError(t, err)
	for k, rev := range early {
		e, err := s.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, k, string(e.Value))
		require.Equal(t, rev, e.Revision)
	}
	ents, _, err := s.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, ents, 510)
}

// A large transaction writing a key twice is refused whole; a condition
// on a key it also writes is no second write.
func TestLargeTxnDuplicateKey(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	ops := make([]store.Op, 100)
	for i := range ops {
		ops[i] = store.PutOp(fmt.Sprintf("d/%03d", i), []byte("v"))
	}
	for _, dup := range []int{1, 50, 99} {
		bad := append(append([]store.Op(nil), ops...), store.DeleteOp(fmt.Sprintf("d/%03d", dup)))
		_, err := s.Txn(ctx, bad...)
		require.ErrorContains(t, err, fmt.Sprintf("key %q written twice", fmt.Sprintf("d/%03d", dup)))
	}
	ents, _, err := s.List(ctx, "d/")
	require.NoError(t, err)
	require.Empty(t, ents, "a refused transaction writes nothing")
	_, err = s.Txn(ctx, append(ops, store.CheckOp("d/007", 0))...)
	require.NoError(t, err)
	ents, _, err = s.List(ctx, "d/")
	require.NoError(t, err)
	require.Len(t, ents, 100)
}

// A replay tells puts of empty values from deletes, as live events do.
func TestReplayKeepsEventTypes(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live, err := s.Watch(ctx, "t/", 0)
	require.NoError(t, err)
	first, err := s.Put(ctx, "t/a", []byte("x"))
	require.NoError(t, err)
	_, err = s.Put(ctx, "t/a", nil)
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, "t/a"))
	replay, err := s.Watch(ctx, "t/", first)
	require.NoError(t, err)
	for name, ch := range map[string]<-chan store.Event{"live": live, "replay": replay} {
		evs := []store.Event{<-ch, <-ch, <-ch}
		require.Equal(t, []store.EventType{store.EventPut, store.EventPut, store.EventDelete},
			[]store.EventType{evs[0].Type, evs[1].Type, evs[2].Type}, name)
		require.Equal(t, "x", string(evs[0].Value), name)
		require.NotNil(t, evs[1].Value, "%s: a put of nil is an empty value", name)
		require.Empty(t, evs[1].Value, name)
		require.Nil(t, evs[2].Value, name)
		require.Equal(t, []int64{first, first + 1, first + 2}, []int64{evs[0].Revision, evs[1].Revision, evs[2].Revision}, name)
	}
}
