package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

func memStore(t *testing.T) store.Store {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	return st
}

func TestAllocate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		rng   netsvc.Range
		reqs  []netsvc.Request
		addrs []string // "" marks an expected error
		errIs []error
	}{
		{
			name:  "next free skips network, reserved",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24"), Reserved: []netip.Addr{netip.MustParseAddr("10.78.0.1")}},
			reqs:  []netsvc.Request{{Owner: "n1"}, {Owner: "n2"}},
			addrs: []string{"10.78.0.2", "10.78.0.3"},
		},
		{
			name:  "idempotent by owner",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")},
			reqs:  []netsvc.Request{{Owner: "n1"}, {Owner: "n2"}, {Owner: "n1", Note: "again"}},
			addrs: []string{"10.78.0.1", "10.78.0.2", "10.78.0.1"},
		},
		{
			name:  "specific address, then taken by another owner",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")},
			reqs:  []netsvc.Request{{Owner: "vip", Addr: netip.MustParseAddr("10.78.0.100")}, {Owner: "other", Addr: netip.MustParseAddr("10.78.0.100")}, {Owner: "vip", Addr: netip.MustParseAddr("10.78.0.101")}},
			addrs: []string{"10.78.0.100", "", ""},
			errIs: []error{nil, netsvc.ErrAddrInUse, netsvc.ErrAddrInUse},
		},
		{
			name:  "reserved may be requested explicitly",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24"), Reserved: []netip.Addr{netip.MustParseAddr("10.78.0.1")}},
			reqs:  []netsvc.Request{{Owner: "gw", Addr: netip.MustParseAddr("10.78.0.1")}},
			addrs: []string{"10.78.0.1"},
		},
		{
			name:  "outside range",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24"), First: netip.MustParseAddr("10.78.0.10"), Last: netip.MustParseAddr("10.78.0.20")},
			reqs:  []netsvc.Request{{Owner: "a", Addr: netip.MustParseAddr("10.78.0.5")}, {Owner: "b"}},
			addrs: []string{"", "10.78.0.10"},
			errIs: []error{netsvc.ErrInvalid, nil},
		},
		{
			name:  "exhaustion: /30 has two host addresses",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/30")},
			reqs:  []netsvc.Request{{Owner: "a"}, {Owner: "b"}, {Owner: "c"}, {Owner: "a"}},
			addrs: []string{"10.78.0.1", "10.78.0.2", "", "10.78.0.1"},
			errIs: []error{nil, nil, netsvc.ErrExhausted, nil},
		},
		{
			name:  "IPv6",
			rng:   netsvc.Range{Name: "r6", Prefix: netip.MustParsePrefix("fd00:78::/64")},
			reqs:  []netsvc.Request{{Owner: "a"}, {Owner: "b"}, {Owner: "c", Addr: netip.MustParseAddr("fd00:78::ffff:ffff:ffff:fffe")}},
			addrs: []string{"fd00:78::1", "fd00:78::2", "fd00:78::ffff:ffff:ffff:fffe"},
		},
		{
			name:  "IPv6 small range exhausts",
			rng:   netsvc.Range{Name: "r6", Prefix: netip.MustParsePrefix("fd00:78::/126")},
			reqs:  []netsvc.Request{{Owner: "a"}, {Owner: "b"}, {Owner: "c"}, {Owner: "d"}},
			addrs: []string{"fd00:78::1", "fd00:78::2", "fd00:78::3", ""},
			errIs: []error{nil, nil, nil, netsvc.ErrExhausted},
		},
		{
			name:  "no owner",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")},
			reqs:  []netsvc.Request{{}},
			addrs: []string{""},
			errIs: []error{netsvc.ErrInvalid},
		},
		{
			name:  "unknown range",
			rng:   netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")},
			reqs:  []netsvc.Request{{Range: "nope", Owner: "a"}},
			addrs: []string{""},
			errIs: []error{netsvc.ErrNotFound},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(memStore(t), nil)
			require.NoError(t, p.AddRange(ctx, tt.rng))
			for i, req := range tt.reqs {
				if req.Range == "" {
					req.Range = tt.rng.Name
				}
				a, err := p.Allocate(ctx, req)
				if tt.addrs[i] == "" {
					require.ErrorIs(t, err, tt.errIs[i], "request %d", i)
					continue
				}
				require.NoError(t, err, "request %d", i)
				require.Equal(t, tt.addrs[i], a.Addr.String(), "request %d", i)
				require.Equal(t, req.Owner, a.Owner)
			}
		})
	}
}

func TestExhaustedErrorSaysWhat(t *testing.T) {
	ctx := context.Background()
	p := New(memStore(t), nil)
	require.NoError(t, p.AddRange(ctx, netsvc.Range{Name: "tiny", Prefix: netip.MustParsePrefix("10.78.0.0/31")}))
	for _, o := range []string{"a", "b"} {
		_, err := p.Allocate(ctx, netsvc.Request{Range: "tiny", Owner: o})
		require.NoError(t, err)
	}
	_, err := p.Allocate(ctx, netsvc.Request{Range: "tiny", Owner: "c"})
	var ex *netsvc.ExhaustedError
	require.ErrorAs(t, err, &ex)
	require.Equal(t, "tiny", ex.Range)
	require.Equal(t, "2", ex.Size)
	require.Contains(t, err.Error(), "release addresses or add a range")
}

func TestReleaseAndReuse(t *testing.T) {
	ctx := context.Background()
	p := New(memStore(t), nil)
	require.NoError(t, p.AddRange(ctx, netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/29")}))
	for _, o := range []string{"a", "b", "c"} {
		_, err := p.Allocate(ctx, netsvc.Request{Range: "r", Owner: o})
		require.NoError(t, err)
	}
	require.NoError(t, p.Release(ctx, "r", "b"))
	require.NoError(t, p.Release(ctx, "r", "b"), "releasing twice is fine")
	list, err := p.Allocations(ctx, "r")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{"a", "c"}, []string{list[0].Owner, list[1].Owner})
	a, err := p.Allocate(ctx, netsvc.Request{Range: "r", Owner: "d"})
	require.NoError(t, err)
	require.Equal(t, "10.78.0.2", a.Addr.String(), "the freed address is the lowest free one")
}

func TestAddRange(t *testing.T) {
	ctx := context.Background()
	p := New(memStore(t), nil)
	r := netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")}
	require.NoError(t, p.AddRange(ctx, r))
	require.NoError(t, p.AddRange(ctx, r), "same definition again is fine")
	require.ErrorIs(t, p.AddRange(ctx, netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.79.0.0/24")}), netsvc.ErrExists)
	got, err := p.Range(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, "10.78.0.1", got.First.String())
	require.Equal(t, "10.78.0.254", got.Last.String())
	for _, bad := range []netsvc.Range{
		{Name: "", Prefix: netip.MustParsePrefix("10.0.0.0/24")},
		{Name: "a/b", Prefix: netip.MustParsePrefix("10.0.0.0/24")},
		{Name: "x"},
		{Name: "x", Prefix: netip.MustParsePrefix("10.0.0.0/24"), First: netip.MustParseAddr("10.0.1.1")},
		{Name: "x", Prefix: netip.MustParsePrefix("10.0.0.0/24"), First: netip.MustParseAddr("10.0.0.9"), Last: netip.MustParseAddr("10.0.0.8")},
		{Name: "x", Prefix: netip.MustParsePrefix("10.0.0.0/24"), Reserved: []netip.Addr{netip.MustParseAddr("10.9.0.1")}},
	} {
		require.ErrorIs(t, p.AddRange(ctx, bad), netsvc.ErrInvalid, "%+v", bad)
	}
}

// 1,000 goroutines over two IPAMs sharing one store (two controllers):
// every owner gets an address, no address twice.
func TestConcurrentAllocationsNeverDuplicate(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	controllers := []*IPAM{New(st, nil), New(st, nil)}
	require.NoError(t, controllers[0].AddRange(ctx, netsvc.Range{Name: "big", Prefix: netip.MustParsePrefix("10.80.0.0/20")}))

	const n = 1000
	got := make([]netsvc.Allocation, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = controllers[i%2].Allocate(ctx, netsvc.Request{Range: "big", Owner: fmt.Sprintf("node-%d", i)})
		}()
	}
	close(start)
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i := range n {
		require.NoError(t, errs[i])
		if prev, dup := seen[got[i].Addr]; dup {
			t.Fatalf("%s given to both %s and %s", got[i].Addr, prev, got[i].Owner)
		}
		seen[got[i].Addr] = got[i].Owner
	}
	list, err := controllers[1].Allocations(ctx, "big")
	require.NoError(t, err)
	require.Len(t, list, n)
	// Next-free packs them: exactly the first n addresses are used.
	require.Equal(t, "10.80.0.1", list[0].Addr.String())
	require.Equal(t, "10.80.3.232", list[n-1].Addr.String())
}

// Concurrent requests of one owner all get the same address.
func TestConcurrentSameOwner(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	a, b := New(st, nil), New(st, nil)
	require.NoError(t, a.AddRange(ctx, netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")}))
	var wg sync.WaitGroup
	addrs := make([]netip.Addr, 50)
	errs := make([]error, len(addrs))
	for i := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := a
			if i%2 == 1 {
				p = b
			}
			al, err := p.Allocate(ctx, netsvc.Request{Range: "r", Owner: "node/etcd-1"})
			addrs[i], errs[i] = al.Addr, err
		}()
	}
	wg.Wait()
	for i, x := range addrs {
		require.NoError(t, errs[i])
		require.Equal(t, "10.78.0.1", x.String())
	}
	list, err := a.Allocations(ctx, "r")
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func TestRestartKeepsAllocations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ipam.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	p := New(st, nil)
	require.NoError(t, p.AddRange(ctx, netsvc.Range{Name: "r", Prefix: netip.MustParsePrefix("10.78.0.0/24")}))
	first := map[string]netip.Addr{}
	for i := range 20 {
		owner := fmt.Sprintf("node-%d", i)
		a, err := p.Allocate(ctx, netsvc.Request{Range: "r", Owner: owner, Note: "before restart"})
		require.NoError(t, err)
		first[owner] = a.Addr
	}
	require.NoError(t, st.Close())

	st2, err := bolt.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st2.Close() })
	p2 := New(st2, nil)
	for owner, addr := range first {
		a, err := p2.Allocate(ctx, netsvc.Request{Range: "r", Owner: owner})
		require.NoError(t, err)
		require.Equal(t, addr, a.Addr, owner)
		require.Equal(t, "before restart", a.Note)
	}
	a, err := p2.Allocate(ctx, netsvc.Request{Range: "r", Owner: "newcomer"})
	require.NoError(t, err)
	require.Equal(t, "10.78.0.21", a.Addr.String())
}
