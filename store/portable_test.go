package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
)

// The embedded backends have no transaction limits: they do not implement
// the optional TxnLimiter capability.
func TestTxnLimiterIsOptional(t *testing.T) {
	s := newMem(t)
	_, ok := s.(store.TxnLimiter)
	require.False(t, ok)
	require.Zero(t, store.MaxTxnOps(s))
	require.Zero(t, store.MaxTxnBytes(s))
}
