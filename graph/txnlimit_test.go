package graph_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/store"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// The journal finds etcd's limit through the named optional capability.
var _ store.TxnLimiter = (*etcdstore.Store)(nil)

// TestJournalFitsTxnLimit: on an etcd whose --max-txn-ops is 8, the
// journal splits its group commits to fit, with and without a Controller
// (fenced records take two writes and a condition each). A store that
// claims a larger limit than the server's shows the limit is real.
func TestJournalFitsTxnLimit(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{ExtraArgs: []string{"--max-txn-ops", "8"}})
	tests := []struct {
		name       string
		claimLimit int
		controller *graph.Controller
		wantErr    string
	}{
		{"one controller", 8, nil, ""},
		{"fenced", 8, &graph.Controller{Name: "ctl", TTL: 2 * time.Second}, ""},
		{"limit unknown", 1000, nil, "too many operations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: tc.name + "/", MaxTxnOps: tc.claimLimit})
			require.NoError(t, err)
			defer st.Close()
			d := chainDeployment("limit", 10, spread(0, 0), sleepRun) // 40 node-roles, journaled in big batches
			p, err := graph.NewPlan(ctx, d, st)
			require.NoError(t, err)
			res, err := graph.Apply(ctx, p, graph.Options{Parallelism: 16, PerNode: 4, Controller: tc.controller})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 40, res.Count(graph.StateSucceeded))
			ents, err := graph.ReadJournal(ctx, st, "limit")
			require.NoError(t, err)
			require.Len(t, ents, 40)
		})
	}
}
