package etcdstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/masonops/mason/store"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
	"github.com/masonops/mason/store/storetest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, eps []string, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(ctxT(t, 10*time.Second), etcdstore.Options{Endpoints: eps, Prefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestContract runs the store contract suite on one real etcd process; each
// subtest gets a fresh, empty namespace in it.
func TestContract(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := etcdstore.Open(ctxT(t, 10*time.Second), etcdstore.Options{
			Endpoints: c.Endpoints(),
			Prefix:    fmt.Sprintf("contract/%d/", n.Add(1)),
		})
		require.NoError(t, err)
		return s
	})
}

// TestNamespaces checks that two stores on one cluster with different
// prefixes never see each other's keys, listings or events.
func TestNamespaces(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := ctxT(t, 30*time.Second)
	prod := open(t, c.Endpoints(), "mason/prod/")
	lab := open(t, c.Endpoints(), "mason/lab/")

	labEvents, err := lab.Watch(ctx, "", 0)
	require.NoError(t, err)

	_, err = prod.Put(ctx, "journal/n1", []byte("prod"))
	require.NoError(t, err)
	rlab, err := lab.Put(ctx, "journal/n1", []byte("lab"))
	require.NoError(t, err)

	e, err := prod.Get(ctx, "journal/n1")
	require.NoError(t, err)
	require.Equal(t, "prod", string(e.Value))
	require.Equal(t, "journal/n1", e.Key, "keys come back without the namespace")

	for _, tc := range []struct {
		s    *etcdstore.Store
		want string
	}{{prod, "prod"}, {lab, "lab"}} {
		ents, _, err := tc.s.List(ctx, "")
		require.NoError(t, err)
		require.Len(t, ents, 1, "store %q lists only its own namespace", tc.s.Prefix())
		require.Equal(t, tc.want, string(ents[0].Value))
	}

	// The lab watcher sees its own write and nothing of prod's.
	select {
	case ev := <-labEvents:
		require.Equal(t, "journal/n1", ev.Key)
		require.Equal(t, "lab", string(ev.Value))
		require.Equal(t, rlab, ev.Revision)
	case <-time.After(5 * time.Second):
		t.Fatal("lab watcher got no event")
	}

	// A conflict names the key inside the namespace.
	_, err = prod.CompareAndSwap(ctx, "journal/n1", 0, []byte("x"))
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "journal/n1", ce.Key)

	// The raw keys really are under the prefixes.
	raw, err := prod.Client().Get(ctx, "mason/", clientv3.WithPrefix())
	require.NoError(t, err)
	var keys []string
	for _, kv := range raw.Kvs {
		keys = append(keys, string(kv.Key))
	}
	require.Equal(t, []string{"mason/lab/journal/n1", "mason/prod/journal/n1"}, keys)

	// A store without a prefix sees the whole keyspace.
	whole := open(t, c.Endpoints(), "")
	ents, _, err := whole.List(ctx, "")
	require.NoError(t, err)
	keys = nil
	for _, e := range ents {
		keys = append(keys, e.Key)
	}
	require.Equal(t, []string{"mason/lab/journal/n1", "mason/prod/journal/n1"}, keys)
}

// TestListPages lists more keys than one etcd round trip returns and checks
// the pages join into one sorted listing.
func TestListPages(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := ctxT(t, 60*time.Second)
	s := open(t, c.Endpoints(), "pages/")
	const n = 2500 // listPage is 1000
	var lastRev int64
	for batch := 0; batch < n/100; batch++ {
		var ops []store.Op
		for i := batch * 100; i < (batch+1)*100; i++ {
			k := fmt.Sprintf("nodes/%05d", i)
			ops = append(ops, store.PutOp(k, []byte(k)))
		}
		rev, err := s.Txn(ctx, ops...)
		require.NoError(t, err)
		lastRev = rev
	}
	_, err := s.Put(ctx, "nodesx", []byte("outside the prefix"))
	require.NoError(t, err)

	ents, rev, err := s.List(ctx, "nodes/")
	require.NoError(t, err)
	require.Len(t, ents, n)
	require.Greater(t, rev, lastRev, "the listing reflects the latest write")
	for i, e := range ents {
		require.Equal(t, fmt.Sprintf("nodes/%05d", i), e.Key)
		require.Equal(t, e.Key, string(e.Value))
	}
}

// TestClose checks that Close ends watches and that every call after it
// fails with store.ErrClosed.
func TestClose(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := ctxT(t, 30*time.Second)
	s, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "close/"})
	require.NoError(t, err)
	ch, err := s.Watch(ctx, "", 0)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	select {
	case _, ok := <-ch:
		require.False(t, ok, "watch channel closed by Close")
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel still open after Close")
	}
	for name, call := range map[string]func() error{
		"Get":   func() error { _, err := s.Get(ctx, "k"); return err },
		"List":  func() error { _, _, err := s.List(ctx, ""); return err },
		"Put":   func() error { _, err := s.Put(ctx, "k", nil); return err },
		"Txn":   func() error { _, err := s.Txn(ctx, store.DeleteOp("k")); return err },
		"Watch": func() error { _, err := s.Watch(ctx, "", 0); return err },
		"Grant": func() error { _, err := s.Grant(ctx, time.Second); return err },
	} {
		require.ErrorIs(t, call(), store.ErrClosed, name)
	}
	require.NoError(t, s.Close(), "closing twice is fine")
}

// TestOpenErrors checks that Open fails fast, with a useful message, when
// it cannot reach a cluster.
func TestOpenErrors(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	for _, tc := range []struct {
		name    string
		opts    etcdstore.Options
		wantErr string
	}{
		{"no endpoints", etcdstore.Options{}, "no endpoints"},
		// Port 1 on loopback: nothing listens there.
		{"nothing listening", etcdstore.Options{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 500 * time.Millisecond}, "did not answer within 500ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := etcdstore.Open(ctx, tc.opts)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
