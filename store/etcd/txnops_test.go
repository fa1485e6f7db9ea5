package etcdstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// TestMaxTxnOps: the limit MaxTxnOps reports is the server's: a Txn of
// that many writes (plus as many conditions) commits, one more write is
// refused by etcd, and nothing of it is written.
func TestMaxTxnOps(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	st := open(t, c.Endpoints(), "txnops/")
	require.Equal(t, 128, st.MaxTxnOps())
	require.Equal(t, 128, store.MaxTxnOps(st), "found through the store.TxnLimiter capability")
	require.Equal(t, 1<<20, store.MaxTxnBytes(st), "two thirds of etcd's default 1.5 MiB request limit")
	ctx := ctxT(t, 30*time.Second)
	tests := []struct {
		name   string
		writes int
		ok     bool
	}{
		{"at the limit", st.MaxTxnOps(), true},
		{"one over", st.MaxTxnOps() + 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := make([]store.Op, 0, 2*tc.writes)
			for i := range tc.writes {
				key := fmt.Sprintf("%s/%03d", tc.name, i)
				ops = append(ops, store.PutOp(key, []byte("v")), store.CheckOp(key+"/absent", 0))
			}
			_, err := st.Txn(ctx, ops...)
			ents, _, lerr := st.List(ctx, tc.name+"/")
			require.NoError(t, lerr)
			if tc.ok {
				require.NoError(t, err)
				require.Len(t, ents, tc.writes)
				return
			}
			require.ErrorContains(t, err, "too many operations")
			require.Empty(t, ents)
		})
	}
}
