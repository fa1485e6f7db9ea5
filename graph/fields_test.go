package graph

import (
	"maps"
	"slices"
)

// fieldsOf makes fieldDigests from a map in name order, for tests.
func fieldsOf(m map[string]string) fieldDigests {
	f := fieldDigests{names: make([]string, 0, len(m)), digs: make([]string, 0, len(m))}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f.names = append(f.names, k)
		f.digs = append(f.digs, m[k])
	}
	return f
}
