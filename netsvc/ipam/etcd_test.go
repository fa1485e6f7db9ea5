package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// Two controllers, each with its own connection to a real etcd server and
// its own IPAM, allocate at once: the store's compare-and-swap is all that
// keeps them apart, and no address is handed out twice.
func TestControllersShareEtcd(t *testing.T) {
	ctx := context.Background()
	cluster := etcdtest.Start(t, etcdtest.Options{})
	var controllers []*IPAM
	for range 2 {
		st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: cluster.Endpoints(), Prefix: "mason/"})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		controllers = append(controllers, New(st, nil))
	}
	require.NoError(t, controllers[0].AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/24")}))
	require.NoError(t, controllers[1].AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/24")}), "same range again: no-op")

	const n = 120
	got := make([]netsvc.Allocation, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Owners 0..59 ask through both controllers: idempotency must
			// hold across them too.
			got[i], errs[i] = controllers[i%2].Allocate(ctx, netsvc.Request{Range: "lab", Owner: fmt.Sprintf("node-%d", i/2)})
		}()
	}
	wg.Wait()
	byOwner := map[string]netip.Addr{}
	owners := map[netip.Addr]string{}
	for i := range n {
		require.NoError(t, errs[i])
		a := got[i]
		if prev, ok := byOwner[a.Owner]; ok {
			require.Equal(t, prev, a.Addr, "%s got two addresses", a.Owner)
		}
		byOwner[a.Owner] = a.Addr
		if o, ok := owners[a.Addr]; ok && o != a.Owner {
			t.Fatalf("%s given to both %s and %s", a.Addr, o, a.Owner)
		}
		owners[a.Addr] = a.Owner
	}
	require.Len(t, byOwner, n/2)
	list, err := controllers[1].Allocations(ctx, "lab")
	require.NoError(t, err)
	require.Len(t, list, n/2)
}
