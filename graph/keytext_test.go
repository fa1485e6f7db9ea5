package graph

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Journal keys cut from shared text are exactly journalPrefix +
// nodeRoleID, across blocks, for service scope (no node) and for keys too
// long to share a block; and none changes as more are made.
func TestKeyTextMatchesNodeRoleID(t *testing.T) {
	var kt keyText
	prefix := journalPrefix("dep")
	type made struct{ got, want string }
	var all []made
	for i := range 3000 {
		role, node := "etcd-member", strings.Repeat("n", i%7)+string(rune('a'+i%26))
		switch {
		case i%10 == 0:
			node = "" // service scope
		case i%997 == 0:
			node = strings.Repeat("long", keyBlock/8) // its own allocation
		}
		all = append(all, made{kt.key(prefix, role, node), prefix + nodeRoleID(role, node)})
	}
	for _, m := range all {
		require.Equal(t, m.want, m.got)
	}
}
