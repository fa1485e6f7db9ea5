package graph

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The core picks the longest remaining path first, parks node-roles whose
// node is busy, and releases them when the node frees up.
func TestSchedOrder(t *testing.T) {
	// 0 → 1 → 2 on node 0 (a long chain), 3 on node 1, 4 on node 0, 5 with no node.
	kids := [][]int32{{1}, {2}, nil, nil, nil, nil}
	deps := []int32{0, 1, 1, 0, 0, 0}
	node := []int32{0, 0, 0, 1, 0, -1}
	est := []int64{1, 1, 1, 5, 1, 2}
	for _, tc := range []struct {
		name string
		fifo bool
		want []int32
	}{
		// prio: 0:3 1:2 2:1 3:5 4:1 5:2; ties go to the lower index
		{"critical path", false, []int32{3, 0, 1, 5, 2, 4}},
		{"fifo", true, []int32{0, 3, 4, 5, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSched(kids, deps, node, 2, est, 1, tc.fifo)
			s.start()
			var got []int32
			// One worker: start, finish, repeat.
			for {
				i := s.next()
				if i < 0 {
					break
				}
				got = append(got, i)
				s.release(i)
				s.succeed(i, false)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSchedParksBusyNodes(t *testing.T) {
	kids := [][]int32{nil, nil, nil}
	node := []int32{0, 0, 1}
	s := newSched(kids, []int32{0, 0, 0}, node, 2, []int64{3, 2, 1}, 1, false)
	s.start()
	require.Equal(t, int32(0), s.next())
	require.Equal(t, int32(2), s.next(), "node 0 is busy: its second node-role waits, node 1's starts")
	require.Equal(t, int32(-1), s.next())
	s.release(0)
	s.succeed(0, false)
	require.Equal(t, int32(1), s.next())
}
