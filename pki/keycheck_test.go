package pki_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// loadV0 fills a store with the state an earlier version of the package
// wrote (testdata/README.md) and returns its clock: a minute after it was
// written, so its certificate is not due for renewal.
func loadV0(t *testing.T) (store.Store, func() time.Time) {
	raw, err := os.ReadFile("testdata/state-v0.json")
	require.NoError(t, err)
	var ents map[string][]byte
	require.NoError(t, json.Unmarshal(raw, &ents))
	st := memStore(t)
	for k, v := range ents {
		_, err := st.Put(context.Background(), k, v)
		require.NoError(t, err)
	}
	crt, err := os.ReadFile("testdata/state-v0.n1.crt")
	require.NoError(t, err)
	blk, _ := pem.Decode(crt)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	at := leaf.NotBefore.Add(6 * time.Minute)
	return st, func() time.Time { return at }
}

var v0Request = pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1.lab"}, IPs: []netip.Addr{netip.MustParseAddr("10.78.0.11")}}}

// A state written before key check values existed opens with its key as
// it is (same CA, same certificate and key handed out again), and gets its
// check value recorded; with another key it is refused and left as it was.
func TestStateBeforeKeyChecks(t *testing.T) {
	ctx := context.Background()
	caPEM, err := os.ReadFile("testdata/state-v0.ca.pem")
	require.NoError(t, err)
	crtPEM, err := os.ReadFile("testdata/state-v0.n1.crt")
	require.NoError(t, err)
	right, err := seal.New(bytes.Repeat([]byte{0x42}, 32))
	require.NoError(t, err)

	t.Run("wrong key", func(t *testing.T) {
		st, clock := loadV0(t)
		before, rev, err := st.List(ctx, "")
		require.NoError(t, err)
		m := newManager(t, st, newKEK(t), func(o *pki.Options) { o.Now = clock })
		for _, svc := range []string{"etcd", "new-service"} {
			_, err := m.Open(ctx, svc, pki.AuthorityConfig{})
			require.ErrorIs(t, err, pki.ErrWrongKEK)
			require.ErrorIs(t, err, seal.ErrWrongKey)
			require.ErrorContains(t, err, "supply the key-encryption key the authority was created with")
		}
		after, rev2, err := st.List(ctx, "")
		require.NoError(t, err)
		require.Equal(t, before, after, "nothing written: no check value, no new authority")
		require.Equal(t, rev, rev2)
	})
	t.Run("right key", func(t *testing.T) {
		st, clock := loadV0(t)
		m := newManager(t, st, right, func(o *pki.Options) { o.Now = clock })
		a, err := m.Load(ctx, "etcd")
		require.NoError(t, err)
		require.Equal(t, string(caPEM), string(a.CAPEM()))
		b, err := a.Issue(ctx, v0Request)
		require.NoError(t, err)
		require.Equal(t, "6ffd858da1991ff28e619e553f7bc476", b.Serial, "the stored certificate, not a new one")
		require.True(t, bytes.HasPrefix(b.CertPEM, crtPEM))
		_, err = b.TLSCertificate()
		require.NoError(t, err, "its sealed key opened and matches")

		e, err := st.Get(ctx, "pki/key-check")
		require.NoError(t, err, "the check value is recorded on first use")
		require.Equal(t, right.CheckValue(), e.Value)

		// From now on a wrong key is refused by the check value alone.
		_, err = newManager(t, st, newKEK(t)).Load(ctx, "kube")
		require.ErrorIs(t, err, pki.ErrWrongKEK)
		require.ErrorContains(t, err, "key "+right.Fingerprint())
		_, err = newManager(t, st, right, func(o *pki.Options) { o.Now = clock }).Load(ctx, "kube")
		require.NoError(t, err)
	})
	t.Run("raw KEK bytes still work", func(t *testing.T) {
		st, clock := loadV0(t)
		m, err := pki.NewManager(st, pki.Options{KEK: bytes.Repeat([]byte{0x42}, 32), Now: clock})
		require.NoError(t, err)
		b, err := m.Issue(ctx, "etcd", v0Request)
		require.NoError(t, err)
		require.Equal(t, "6ffd858da1991ff28e619e553f7bc476", b.Serial)
	})
}

// A Manager with another key never creates an authority beside the ones
// sealed with the store's key (before key checks, it did: the store then
// held authorities sealed under two keys).
func TestWrongKeyCreatesNothing(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	kek := newKEK(t)
	_, err := newManager(t, st, kek).Open(ctx, "etcd", pki.AuthorityConfig{})
	require.NoError(t, err)

	_, err = newManager(t, st, newKEK(t)).Open(ctx, "kube", pki.AuthorityConfig{})
	require.ErrorIs(t, err, pki.ErrWrongKEK)
	_, err = st.Get(ctx, "pki/kube/authority")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Without any key, loading fails as before and checks nothing.
	_, err = newManager(t, st, nil).Load(ctx, "etcd")
	require.ErrorIs(t, err, pki.ErrKEKRequired)
	require.ErrorIs(t, err, seal.ErrNoKey)

	// The right key goes on.
	_, err = newManager(t, st, kek).Open(ctx, "kube", pki.AuthorityConfig{})
	require.NoError(t, err)
}
