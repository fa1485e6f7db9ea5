package graph

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// The journal's queue keeps records in the order queued, across chunks
// and segments handed over whole, and reuses its chunks once emptied
// without letting a reused chunk show old records.
func TestRecQueueOrder(t *testing.T) {
	var free [][]record
	var q recQueue
	want := []string{}
	add := func(id string) {
		q.push(record{ID: id}, &free)
		want = append(want, id)
	}
	for round := range 3 {
		want = want[:0]
		for k := range chunkRecs + 3 {
			add(fmt.Sprintf("r%d-a%d", round, k))
		}
		all := make([]record, 5, 8) // spare capacity: nothing may be appended to it
		for k := range all {
			all[k].ID = fmt.Sprintf("r%d-all%d", round, k)
			want = append(want, all[k].ID)
		}
		q.pushAll(all)
		for k := range 2 {
			add(fmt.Sprintf("r%d-b%d", round, k))
		}
		require.Equal(t, len(want), q.n)
		var got []string
		for _, seg := range q.segs {
			for _, r := range seg {
				got = append(got, r.ID)
			}
		}
		require.Equal(t, want, got, "round %d", round)
		require.Equal(t, make([]record, 3), all[5:8], "records were appended into a segment handed over whole")
		q.recycle(&free)
		require.Zero(t, q.n)
		q.segs = q.segs[:0]
		require.NotEmpty(t, free, "chunks are kept for reuse")
		for _, c := range free {
			require.Empty(t, c)
			require.Equal(t, chunkRecs, cap(c))
		}
	}
}
