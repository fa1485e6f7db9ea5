package graph

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The queue of successes waiting to be durable gives them back in
// sequence order whatever the order they came in (nearly sorted, as
// workers journal, or shuffled), interleaved with pops.
func TestDurableQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, spread := range []int{0, 3, 50, 5000} {
		var q durableQueue
		var want, got []uint64
		next := uint64(0)
		for round := range 40 {
			n := 1 + rng.IntN(300)
			batch := make([]uint64, n)
			for k := range batch {
				next++
				batch[k] = next
			}
			for k := range batch { // move each a little (or anywhere)
				if spread > 0 {
					j := min(n-1, k+rng.IntN(spread))
					batch[k], batch[j] = batch[j], batch[k]
				}
			}
			for _, s := range batch {
				q.push(pendingDurable{seq: s, i: int32(s)})
			}
			want = append(want, batch...)
			// Pop what is "durable": up to a point, as settleDurable does.
			dur := next - uint64(rng.IntN(n))
			if round == 39 {
				dur = next
			}
			for q.len() > 0 && q.peek().seq <= dur {
				got = append(got, q.pop().seq)
			}
		}
		require.Zero(t, q.len())
		slices.Sort(want)
		require.Equal(t, want, got, "spread %d", spread)
	}
}
