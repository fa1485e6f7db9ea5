package mem_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// journalKeys is how many node-roles the journal-shaped benchmark keeps.
const journalKeys = 10_000

// BenchmarkJournalTxn writes what the graph's journal writes: Txns of
// plain puts of 150–300-byte values at keys like
// "mason/graph/overhead/nr/a@n0001", every key once and then once more (a
// node-role's record at plan time, then its result), the values sliced
// from one buffer the writer reuses after each Txn. One op is a fresh
// store and both passes; metrics are per put (ns, allocs, bytes) and the
// heap the store holds afterwards per key (retained-B/key, measured after
// a collection with the store alive), which every later collection marks.
func BenchmarkJournalTxn(b *testing.B) {
	for _, batch := range []int{100, 500, 2000, journalKeys} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchJournal(b, batch, 1, false) })
	}
	// One watcher of every key, as a controller following the journal.
	b.Run("batch=500/watched", func(b *testing.B) { benchJournal(b, 500, 1, true) })
	// The second pass leaves every 20th key as the first wrote it, so
	// that the memory a value keeps alive beside it shows.
	b.Run("batch=500/keep=5%", func(b *testing.B) { benchJournal(b, 500, 20, false) })
}

// benchJournal writes every key in Txns of batch puts, then every key
// again but each keep-th (keep 1: none kept); with watched, a watcher of
// every key receives each event before the op ends.
func benchJournal(b *testing.B, batch, keep int, watched bool) {
	ctx := context.Background()
	keys := make([]string, journalKeys)
	sizes := make([]int, journalKeys)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range keys {
		keys[i] = fmt.Sprintf("mason/graph/overhead/nr/%c@n%04d", 'a'+i%3, i)
		sizes[i] = 150 + r.IntN(151)
	}
	ops := make([]store.Op, 0, batch)
	var arena []byte
	puts := 0
	src := map[byte][]byte{'p': bytes.Repeat([]byte{'p'}, 300), 'r': bytes.Repeat([]byte{'r'}, 300)}
	pass := func(s store.Store, fill byte, keep int) {
		for lo := 0; lo < len(keys); lo += batch {
			hi := min(lo+batch, len(keys))
			arena, ops = arena[:0], ops[:0]
			for i := lo; i < hi; i++ {
				if keep > 1 && i%keep == 0 {
					continue
				}
				at := len(arena)
				arena = append(arena, src[fill][:sizes[i]]...)
				puts++
				ops = append(ops, store.PutOp(keys[i], arena[at:len(arena):len(arena)]))
			}
			if _, err := s.Txn(ctx, ops...); err != nil {
				b.Fatal(err)
			}
			// The writer reuses its buffer: the store must have copied.
			clear(arena)
		}
	}
	perOp := 2 * journalKeys // puts per op
	if keep > 1 {
		perOp -= (journalKeys + keep - 1) / keep
	}
	var ms runtime.MemStats
	var retained uint64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		b.StartTimer()
		s := mem.New()
		wctx, cancel := context.WithCancel(ctx)
		delivered := make(chan error, 1)
		if watched {
			ch, err := s.Watch(wctx, "mason/", 0)
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for n := range perOp {
					if _, ok := <-ch; !ok {
						delivered <- fmt.Errorf("watch closed after %d of %d events", n, perOp)
						return
					}
				}
				delivered <- nil
			}()
		}
		pass(s, 'p', 1)
		pass(s, 'r', keep)
		if watched {
			if err := <-delivered; err != nil {
				b.Fatal(err)
			}
		}
		cancel()
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		retained += ms.HeapAlloc - before
		e, err := s.Get(ctx, keys[len(keys)-1])
		if err != nil || e.Value[0] != 'r' {
			b.Fatalf("last key: %v %q", err, e.Value)
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(puts), "ns/put")
	b.ReportMetric(float64(retained)/float64(b.N)/journalKeys, "retained-B/key")
}
