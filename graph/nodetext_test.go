package graph

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The short path of nodeRolesText (up to three node-roles) reads exactly
// as the grouped one: roles in name order, nodes in natural order.
func TestNodeRolesTextShortPath(t *testing.T) {
	g, err := build(overheadDeployment(12))
	require.NoError(t, err)
	n := int32(len(g.nrs))
	checked := 0
	for a := int32(0); a < n; a++ {
		for b := int32(0); b < n; b += 5 {
			for c := int32(0); c < n; c += 7 {
				set := uniqueSorted([]int32{c, b, a})
				if len(set) < 2 {
					continue
				}
				require.Equal(t, groupedText(g, set), nodeRolesText(g, set), "node-roles %v", set)
				checked++
			}
		}
	}
	require.Greater(t, checked, 1000)
	// Roles by name, then nodes.
	ids := []int32{g.index["b@n0010"], g.index["b@n0002"], g.index["a@n0003"]}
	require.Equal(t, "a@n0003, b@n0002, b@n0010", nodeRolesText(g, uniqueSorted(ids)))
}
