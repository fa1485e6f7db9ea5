package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/gob"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

func newKEK(t testing.TB) *seal.KEK {
	k, err := seal.Generate()
	require.NoError(t, err)
	return k
}

func memStore(t testing.TB) store.Store {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	return st
}

func newManager(t testing.TB, st store.Store, kek *seal.KEK, opts ...func(*pki.Options)) *pki.Manager {
	o := pki.Options{Key: kek}
	for _, f := range opts {
		f(&o)
	}
	m, err := pki.NewManager(st, o)
	require.NoError(t, err)
	return m
}

var (
	lo    = netip.MustParseAddr("127.0.0.1")
	labIP = netip.MustParseAddr("10.78.0.11")
)

func serverReq(name string, dns ...string) pki.Request {
	return pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: name, DNSNames: dns, IPs: []netip.Addr{lo}}}
}

func clientReq(name string, groups ...string) pki.Request {
	return pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: name, Groups: groups}}
}

func TestAuthorityAlgorithms(t *testing.T) {
	tests := []struct {
		alg     pki.Algorithm
		check   func(t *testing.T, pub any)
		inter   bool
		onlyNon bool
	}{
		{pki.ECDSAP256, func(t *testing.T, pub any) { require.IsType(t, &ecdsa.PublicKey{}, pub) }, false, false},
		{pki.ECDSAP256, func(t *testing.T, pub any) { require.IsType(t, &ecdsa.PublicKey{}, pub) }, true, false},
		{pki.Ed25519, func(t *testing.T, pub any) { require.IsType(t, ed25519.PublicKey{}, pub) }, true, false},
		{pki.RSA2048, func(t *testing.T, pub any) { require.Equal(t, 2048, pub.(*rsa.PublicKey).N.BitLen()) }, false, false},
		{pki.RSA3072, func(t *testing.T, pub any) { require.Equal(t, 3072, pub.(*rsa.PublicKey).N.BitLen()) }, false, false},
		{pki.RSA4096, func(t *testing.T, pub any) { require.Equal(t, 4096, pub.(*rsa.PublicKey).N.BitLen()) }, false, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/intermediate=%v", tc.alg, tc.inter), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m := newManager(t, memStore(t), newKEK(t))
			a, err := m.Open(ctx, "svc", pki.AuthorityConfig{Algorithm: tc.alg, Intermediate: tc.inter})
			require.NoError(t, err)
			roots := a.Roots()
			require.Len(t, roots, 1)
			root := roots[0]
			tc.check(t, root.PublicKey)
			require.True(t, root.IsCA)
			if tc.inter {
				require.Equal(t, 1, root.MaxPathLen)
			} else {
				require.Equal(t, 0, root.MaxPathLen)
				require.True(t, root.MaxPathLenZero)
			}

			b, err := a.Issue(ctx, serverReq("n1", "n1.lab"))
			require.NoError(t, err)
			leaf, err := b.Leaf()
			require.NoError(t, err)
			tc.check(t, leaf.PublicKey) // leaves default to the authority's algorithm
			chain, err := pemCerts(b.CertPEM)
			require.NoError(t, err)
			if tc.inter {
				require.Len(t, chain, 2, "leaf and intermediate")
				require.True(t, chain[1].IsCA)
				require.True(t, chain[1].MaxPathLenZero)
				require.NoError(t, chain[1].CheckSignatureFrom(root))
			} else {
				require.Len(t, chain, 1)
			}
			require.NoError(t, a.Verify(chain, x509.ExtKeyUsageServerAuth, "n1.lab"))
			_, err = b.TLSCertificate()
			require.NoError(t, err)
		})
	}
}

func pemCerts(p []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, p = pem.Decode(p)
		if blk == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func TestKEK(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	kek := newKEK(t)
	a, err := newManager(t, st, kek).Open(ctx, "etcd", pki.AuthorityConfig{Intermediate: true})
	require.NoError(t, err)
	b1, err := a.Issue(ctx, serverReq("n1", "n1.lab"))
	require.NoError(t, err)
	rootPEM := a.CAPEM()
	require.NoError(t, st.Close())

	// Nothing stored holds a private key in the clear.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "PRIVATE KEY")
	blk, _ := pem.Decode(b1.KeyPEM.Reveal())
	require.NotNil(t, blk)
	require.False(t, bytes.Contains(raw, blk.Bytes), "leaf key DER found unencrypted in the store file")

	st, err = bolt.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })

	tests := []struct {
		name string
		kek  *seal.KEK
		want error
		msg  string
	}{
		{"no KEK", nil, pki.ErrKEKRequired, `authority "etcd" is persisted with sealed private keys`},
		{"wrong KEK", newKEK(t), pki.ErrWrongKEK, "supply the key-encryption key the authority was created with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newManager(t, st, tc.kek).Load(ctx, "etcd")
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			_, err = newManager(t, st, tc.kek).Issue(ctx, "etcd", serverReq("n1", "n1.lab"))
			require.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("short KEK", func(t *testing.T) {
		_, err := pki.NewManager(st, pki.Options{KEK: []byte("too short")})
		require.ErrorContains(t, err, "must be 16, 24 or 32 bytes")
	})
	t.Run("right KEK reloads the same CA and certificate", func(t *testing.T) {
		m := newManager(t, st, kek)
		a, err := m.Load(ctx, "etcd")
		require.NoError(t, err)
		require.Equal(t, rootPEM, a.CAPEM())
		b2, err := m.Issue(ctx, "etcd", serverReq("n1", "n1.lab"))
		require.NoError(t, err)
		require.Equal(t, b1.Serial, b2.Serial, "same request, same certificate")
		require.Equal(t, b1.KeyPEM.Reveal(), b2.KeyPEM.Reveal())
	})
	t.Run("config mismatch", func(t *testing.T) {
		_, err := newManager(t, st, kek).Open(ctx, "etcd", pki.AuthorityConfig{Algorithm: pki.Ed25519})
		require.ErrorContains(t, err, "exists with a different configuration")
	})
	t.Run("same config reopens", func(t *testing.T) {
		a, err := newManager(t, st, kek).Open(ctx, "etcd", pki.AuthorityConfig{Intermediate: true})
		require.NoError(t, err)
		require.Equal(t, rootPEM, a.CAPEM())
	})
	t.Run("unknown authority", func(t *testing.T) {
		_, err := newManager(t, st, kek).Load(ctx, "nope")
		require.ErrorIs(t, err, pki.ErrNoAuthority)
	})
}

func TestRequestsRefused(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, memStore(t), newKEK(t))
	a, err := m.Open(ctx, "kube-apiserver", pki.AuthorityConfig{
		Domains:  []string{"lab.example"},
		Networks: []netip.Prefix{netip.MustParsePrefix("10.78.0.0/16"), netip.MustParsePrefix("127.0.0.0/8")},
	})
	require.NoError(t, err)
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	tests := []struct {
		name  string
		req   pki.Request
		field string
		msg   string
	}{
		{"wildcard DNS", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"*.lab.example"}}}, "Identity.DNSNames[0]", "wildcard"},
		{"wildcard in middle", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"a.*.lab.example"}}}, "Identity.DNSNames[0]", "wildcard"},
		{"wildcard CN", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "*"}}, "Identity.Name", "wildcard"},
		{"outside domain", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1.evil.example"}}}, "Identity.DNSNames[0]", "outside the authority's permitted domains"},
		{"suffix trick", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"evillab.example"}}}, "Identity.DNSNames[0]", "outside"},
		{"outside networks", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", IPs: ip("192.0.2.1")}}, "Identity.IPs[0]", "outside the authority's permitted networks"},
		{"unspecified IP", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", IPs: ip("0.0.0.0")}}, "Identity.IPs[0]", "unspecified"},
		{"zero IP", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", IPs: []netip.Addr{{}}}}, "Identity.IPs[0]", "invalid"},
		{"IP as DNS name", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"10.78.0.1"}}}, "Identity.DNSNames[0]", "put it in Identity.IPs"},
		{"bad label", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n_1.lab.example"}}}, "Identity.DNSNames[0]", "only letters"},
		{"empty label", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1..lab.example"}}}, "Identity.DNSNames[0]", "1 to 63"},
		{"server without names", pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n1"}}, "Identity", "at least one DNS name or IP"},
		{"peer without names", pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: "n1"}}, "Identity", "at least one DNS name or IP"},
		{"empty CN", pki.Request{Kind: pki.Client, Identity: pki.Identity{}}, "Identity.Name", "must not be empty"},
		{"control char in CN", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "ad\nmin"}}, "Identity.Name", "non-printable"},
		{"long CN", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: strings.Repeat("a", 65)}}, "Identity.Name", "longer than 64"},
		{"bad group", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "u", Groups: []string{""}}}, "Identity.Groups[0]", "empty"},
		{"no kind", pki.Request{Identity: pki.Identity{Name: "u"}}, "Kind", "want pki.Server"},
		{"validity too short", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "u"}, Profile: pki.Profile{Validity: time.Second}}, "Profile.Validity", "at least one minute"},
		{"renew before >= validity", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "u"}, Profile: pki.Profile{Validity: time.Hour, RenewBefore: time.Hour}}, "Profile.RenewBefore", "shorter than Validity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Issue(ctx, tc.req)
			require.ErrorIs(t, err, pki.ErrRefused)
			var re *pki.RequestError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tc.field, re.Field)
			require.Equal(t, "kube-apiserver", re.Service)
			require.ErrorContains(t, err, tc.msg)
		})
	}

	t.Run("allowed names are normalized", func(t *testing.T) {
		b, err := a.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{
			Name:     "n1",
			DNSNames: []string{"N1.Lab.Example.", "lab.example", "n1.lab.example"},
			IPs:      []netip.Addr{netip.MustParseAddr("::ffff:10.78.0.11"), labIP},
		}})
		require.NoError(t, err)
		leaf, err := b.Leaf()
		require.NoError(t, err)
		require.Equal(t, []string{"lab.example", "n1.lab.example"}, leaf.DNSNames)
		require.Len(t, leaf.IPAddresses, 1)
		require.Equal(t, "10.78.0.11", leaf.IPAddresses[0].String())
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, leaf.ExtKeyUsage)
	})
	t.Run("client certificate carries user and groups", func(t *testing.T) {
		b, err := a.Issue(ctx, clientReq("system:node:n1", "system:nodes"))
		require.NoError(t, err)
		leaf, err := b.Leaf()
		require.NoError(t, err)
		require.Equal(t, "system:node:n1", leaf.Subject.CommonName)
		require.Equal(t, []string{"system:nodes"}, leaf.Subject.Organization)
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
		require.Empty(t, leaf.DNSNames)
	})
	t.Run("root is name-constrained", func(t *testing.T) {
		root := a.Roots()[0]
		require.Equal(t, []string{"lab.example"}, root.PermittedDNSDomains)
		require.True(t, root.PermittedDNSDomainsCritical)
		require.Len(t, root.PermittedIPRanges, 2)
	})
}

func TestIssueIdempotentRenewAndProfile(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	m := newManager(t, memStore(t), newKEK(t), func(o *pki.Options) { o.Now = func() time.Time { return clock() } })
	a, err := m.Open(ctx, "etcd", pki.AuthorityConfig{})
	require.NoError(t, err)
	req := pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1.lab"}, IPs: []netip.Addr{labIP}},
		Profile: pki.Profile{Validity: 30 * 24 * time.Hour, RenewBefore: 10 * 24 * time.Hour}}

	b1, err := a.Issue(ctx, req)
	require.NoError(t, err)
	leaf, err := b1.Leaf()
	require.NoError(t, err)
	require.WithinDuration(t, now.Add(30*24*time.Hour), leaf.NotAfter, time.Second)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)

	b2, err := a.Issue(ctx, req)
	require.NoError(t, err)
	require.Equal(t, b1.Serial, b2.Serial, "an unchanged request returns the stored certificate")

	changed := req
	changed.Identity.IPs = append(changed.Identity.IPs, netip.MustParseAddr("10.78.0.12"))
	b3, err := a.Issue(ctx, changed)
	require.NoError(t, err)
	require.NotEqual(t, b1.Serial, b3.Serial, "a changed identity gets a new certificate")

	renewed, err := a.Renew(ctx, pki.Peer, "n1")
	require.NoError(t, err)
	require.NotEqual(t, b3.Serial, renewed.Serial)
	require.NotEqual(t, b3.KeyPEM.Reveal(), renewed.KeyPEM.Reveal(), "renewal uses a new key")
	rleaf, err := renewed.Leaf()
	require.NoError(t, err)
	require.Equal(t, []string{"n1.lab"}, rleaf.DNSNames)
	require.Len(t, rleaf.IPAddresses, 2, "renewal keeps the identity")

	// Inside the renew-before window Issue renews by itself.
	clock = func() time.Time { return now.Add(21 * 24 * time.Hour) }
	b4, err := a.Issue(ctx, changed)
	require.NoError(t, err)
	require.NotEqual(t, renewed.Serial, b4.Serial)

	_, err = a.Renew(ctx, pki.Client, "nobody")
	require.ErrorContains(t, err, "none was issued; call Issue first")
}

func TestRevokeAndCRL(t *testing.T) {
	for _, inter := range []bool{false, true} {
		t.Run(fmt.Sprintf("intermediate=%v", inter), func(t *testing.T) {
			ctx := context.Background()
			m := newManager(t, memStore(t), newKEK(t))
			a, err := m.Open(ctx, "etcd", pki.AuthorityConfig{Intermediate: inter})
			require.NoError(t, err)
			good, err := a.Issue(ctx, serverReq("n1", "n1.lab"))
			require.NoError(t, err)
			bad, err := a.Issue(ctx, serverReq("n2", "n2.lab"))
			require.NoError(t, err)

			crl0, err := a.CRL(ctx)
			require.NoError(t, err)
			require.NoError(t, pki.VerifyPEM(bad.CertPEM, bad.CAPEM, crl0, pki.VerifyOptions{Usage: x509.ExtKeyUsageServerAuth, DNSName: "n2.lab"}))

			require.NoError(t, a.Revoke(ctx, bad.Serial, pki.ReasonKeyCompromise))
			require.NoError(t, a.Revoke(ctx, strings.ToUpper(bad.Serial), pki.ReasonKeyCompromise), "revoking twice is a no-op")
			require.True(t, a.Revoked(bad.Serial))
			require.False(t, a.Revoked(good.Serial))

			crl, err := a.CRL(ctx)
			require.NoError(t, err)
			blk, _ := pem.Decode(crl)
			require.NotNil(t, blk)
			parsed, err := x509.ParseRevocationList(blk.Bytes)
			require.NoError(t, err)
			require.Len(t, parsed.RevokedCertificateEntries, 1)
			require.Equal(t, bad.Serial, fmt.Sprintf("%x", parsed.RevokedCertificateEntries[0].SerialNumber))
			require.Equal(t, pki.ReasonKeyCompromise, parsed.RevokedCertificateEntries[0].ReasonCode)
			require.Equal(t, 1, parsed.Number.Cmp(mustCRLNumber(t, crl0)), "the CRL number grows")

			opts := pki.VerifyOptions{Usage: x509.ExtKeyUsageServerAuth}
			require.ErrorIs(t, pki.VerifyPEM(bad.CertPEM, bad.CAPEM, crl, opts), pki.ErrRevoked)
			require.NoError(t, pki.VerifyPEM(good.CertPEM, good.CAPEM, crl, opts))
			require.ErrorContains(t, pki.VerifyPEM(good.CertPEM, good.CAPEM, nil, opts), "cannot check revocation")
			require.ErrorContains(t, pki.VerifyPEM(good.CAPEM, good.CAPEM, crl, pki.VerifyOptions{}), "itself one of the trusted roots")
			require.ErrorContains(t, pki.VerifyPEM(nil, good.CAPEM, crl, opts), "no certificate")
			otherCRL := func() []byte {
				o, err := newManager(t, memStore(t), newKEK(t)).Open(ctx, "etcd", pki.AuthorityConfig{Intermediate: inter})
				require.NoError(t, err)
				c, err := o.CRL(ctx)
				require.NoError(t, err)
				return c
			}()
			require.ErrorContains(t, pki.VerifyPEM(good.CertPEM, good.CAPEM, otherCRL, opts), "no CRL signed by", "a CRL of another authority with the same name does not count")
			require.ErrorContains(t, pki.VerifyPEM(good.CertPEM, good.CAPEM, crl, pki.VerifyOptions{Now: time.Now().Add(8 * 24 * time.Hour)}), "CRL of")

			chain, err := pemCerts(bad.CertPEM)
			require.NoError(t, err)
			require.ErrorIs(t, a.Verify(chain, x509.ExtKeyUsageServerAuth, ""), pki.ErrRevoked)

			// The identity gets a fresh certificate on its next Issue.
			again, err := a.Issue(ctx, serverReq("n2", "n2.lab"))
			require.NoError(t, err)
			require.NotEqual(t, bad.Serial, again.Serial)

			require.ErrorContains(t, a.Revoke(ctx, "abcdef", 0), "never issued it")
			require.ErrorContains(t, a.Revoke(ctx, "not hex", 0), "not a hex serial")
		})
	}
}

func mustCRLNumber(t *testing.T, p []byte) *big.Int {
	blk, _ := pem.Decode(p)
	require.NotNil(t, blk)
	crl, err := x509.ParseRevocationList(blk.Bytes)
	require.NoError(t, err)
	return crl.Number
}

func TestRotateRootWithOverlap(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	m := newManager(t, memStore(t), newKEK(t), func(o *pki.Options) { o.Now = func() time.Time { return clock() } })
	a, err := m.Open(ctx, "swarm-lb", pki.AuthorityConfig{Intermediate: true})
	require.NoError(t, err)
	old, err := a.Issue(ctx, serverReq("n1", "n1.lab"))
	require.NoError(t, err)
	oldRoot := a.Roots()[0]

	require.NoError(t, a.RotateRoot(ctx, 24*time.Hour))
	roots := a.Roots()
	require.Len(t, roots, 2, "old and new root are both trusted during the overlap")
	require.Equal(t, oldRoot.Raw, roots[0].Raw)
	newRoot := roots[1]
	require.NotEqual(t, oldRoot.Raw, newRoot.Raw)

	fresh, err := a.Issue(ctx, serverReq("n1", "n1.lab"))
	require.NoError(t, err)
	require.NotEqual(t, old.Serial, fresh.Serial, "after rotation Issue re-issues from the new root")
	freshChain, err := pemCerts(fresh.CertPEM)
	require.NoError(t, err)
	require.NoError(t, freshChain[1].CheckSignatureFrom(newRoot))
	caCerts, err := pemCerts(fresh.CAPEM)
	require.NoError(t, err)
	require.Len(t, caCerts, 2, "bundles carry both roots during the overlap")

	oldChain, err := pemCerts(old.CertPEM)
	require.NoError(t, err)
	require.NoError(t, a.Verify(oldChain, x509.ExtKeyUsageServerAuth, "n1.lab"), "old leaves verify during the overlap")
	require.NoError(t, a.Verify(freshChain, x509.ExtKeyUsageServerAuth, "n1.lab"))

	// The old root can still revoke what it issued.
	require.NoError(t, a.Revoke(ctx, old.Serial, pki.ReasonSuperseded))
	crl, err := a.CRL(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(crl), "BEGIN X509 CRL"), "one CRL per trusted generation")
	require.ErrorIs(t, pki.VerifyPEM(old.CertPEM, fresh.CAPEM, crl, pki.VerifyOptions{Now: now}), pki.ErrRevoked)
	require.NoError(t, pki.VerifyPEM(fresh.CertPEM, fresh.CAPEM, crl, pki.VerifyOptions{Now: now}))

	// After the window only the new root is trusted.
	clock = func() time.Time { return now.Add(25 * time.Hour) }
	require.Len(t, a.Roots(), 1)
	require.Equal(t, newRoot.Raw, a.Roots()[0].Raw)
	err = a.Verify(oldChain, x509.ExtKeyUsageServerAuth, "")
	require.ErrorContains(t, err, "failed verification by authority")
	require.NoError(t, a.Verify(freshChain, x509.ExtKeyUsageServerAuth, ""))

	// A second rotation drops the expired generation from the store.
	require.NoError(t, a.RotateRoot(ctx, time.Hour))
	require.Len(t, a.Roots(), 2)
	require.Error(t, a.RotateRoot(ctx, -time.Second))
}

// TestConcurrentControllers runs two Managers (two controllers) on one
// bbolt store: concurrent creation, issuance and revocation must not lose
// anything.
func TestConcurrentControllers(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	kek := newKEK(t)
	ms := []*pki.Manager{newManager(t, st, kek), newManager(t, st, kek)}

	// Both create "etcd" at once: one wins, both end up with the same root.
	auths := make([]*pki.Authority, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			auths[i], errs[i] = ms[i].Open(ctx, "etcd", pki.AuthorityConfig{})
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, auths[0].CAPEM(), auths[1].CAPEM())

	// Both issue for the same identity at once: they agree on one certificate.
	bundles := make([]pki.Bundle, 2)
	for i := range auths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bundles[i], errs[i] = auths[i].Issue(ctx, serverReq("n1", "n1.lab"))
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, bundles[0].Serial, bundles[1].Serial)

	// Each issues distinct identities and revokes them concurrently: the
	// final CRL lists every revoked serial.
	const per = 6
	serials := make([][]string, 2)
	for i := range auths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < per; j++ {
				b, err := auths[i].Issue(ctx, clientReq(fmt.Sprintf("user-%d-%d", i, j)))
				if err == nil {
					err = auths[i].Revoke(ctx, b.Serial, pki.ReasonCessation)
				}
				if err != nil {
					errs[i] = err
					return
				}
				serials[i] = append(serials[i], b.Serial)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.NoError(t, auths[0].Refresh(ctx))
	crl, err := auths[0].CRL(ctx)
	require.NoError(t, err)
	blk, _ := pem.Decode(crl)
	parsed, err := x509.ParseRevocationList(blk.Bytes)
	require.NoError(t, err)
	listed := map[string]bool{}
	for _, e := range parsed.RevokedCertificateEntries {
		listed[fmt.Sprintf("%x", e.SerialNumber)] = true
	}
	for _, ss := range serials {
		for _, s := range ss {
			require.True(t, listed[s], "serial %s missing from the CRL", s)
			require.True(t, auths[0].Revoked(s))
		}
	}
	require.Len(t, listed, 2*per)

	// A rotation by one controller reaches the other on Refresh.
	require.NoError(t, auths[1].RotateRoot(ctx, time.Hour))
	require.Len(t, auths[0].Roots(), 1)
	require.NoError(t, auths[0].Refresh(ctx))
	require.Len(t, auths[0].Roots(), 2)
}

// dirTransport is a provider.Transport onto a local directory, standing in
// for a node's filesystem.
type dirTransport struct{ root string }

func (d dirTransport) Run(context.Context, provider.Command) (provider.Result, error) {
	return provider.Result{}, fmt.Errorf("dirTransport cannot run commands")
}

func (d dirTransport) Put(_ context.Context, p string, data io.Reader, o provider.FileOptions) error {
	full := filepath.Join(d.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	b, err := io.ReadAll(data)
	if err != nil {
		return err
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o644
	}
	tmp := full + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // umask-proof
		return err
	}
	return os.Rename(tmp, full)
}

func (d dirTransport) Get(_ context.Context, p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.root, p))
}

func TestInstall(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, memStore(t), newKEK(t))
	b, err := m.Issue(ctx, "etcd", pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: "n1", IPs: []netip.Addr{labIP}}})
	require.NoError(t, err)
	tr := dirTransport{root: t.TempDir()}
	files := pki.FilesIn("/etc/etcd/pki", "peer")
	require.NoError(t, b.Install(ctx, tr, files))

	tests := []struct {
		path string
		mode fs.FileMode
		want []byte
	}{
		{files.Key, 0o600, b.KeyPEM.Reveal()},
		{files.Cert, 0o644, b.CertPEM},
		{files.CA, 0o644, b.CAPEM},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			fi, err := os.Stat(filepath.Join(tr.root, tc.path))
			require.NoError(t, err)
			require.Equal(t, tc.mode, fi.Mode().Perm())
			got, err := tr.Get(ctx, tc.path)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	// What was installed is a working key pair.
	certPEM, err := tr.Get(ctx, files.Cert)
	require.NoError(t, err)
	keyPEM, err := tr.Get(ctx, files.Key)
	require.NoError(t, err)
	_, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
}

// TestBundleEncoding: the journal (gob) keeps the key, JSON and printing
// do not.
func TestBundleEncoding(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, memStore(t), newKEK(t))
	b, err := m.Issue(ctx, "etcd", serverReq("n1", "n1.lab"))
	require.NoError(t, err)

	var buf bytes.Buffer
	require.NoError(t, gob.NewEncoder(&buf).Encode(b))
	var back pki.Bundle
	require.NoError(t, gob.NewDecoder(&buf).Decode(&back))
	require.Equal(t, b.KeyPEM.Reveal(), back.KeyPEM.Reveal())
	require.Equal(t, b.CertPEM, back.CertPEM)
	require.Equal(t, b.Serial, back.Serial)
	require.True(t, b.NotAfter.Equal(back.NotAfter))
	_, err = back.TLSCertificate()
	require.NoError(t, err)

	js, err := json.Marshal(b)
	require.NoError(t, err)
	require.NotContains(t, string(js), "PRIVATE KEY")
	require.Contains(t, string(js), `"KeyPEM":"[redacted]"`)
	require.Contains(t, string(js), `"Kind":"server"`)
	require.Equal(t, fmt.Sprintf("pki.Bundle{etcd server \"n1\" serial %s, expires %s}", b.Serial, b.NotAfter.UTC().Format(time.RFC3339)), b.String())
}

func TestNodeIdentity(t *testing.T) {
	n := &provider.Node{Name: "n1", InterfaceAddr: labIP, PrivateAddrs: []netip.Addr{labIP, netip.MustParseAddr("10.78.1.11")}}
	tests := []struct {
		domains []string
		dns     []string
	}{
		{nil, []string{"n1"}},
		{[]string{"lab.example", "lab"}, []string{"n1.lab.example", "n1.lab"}},
	}
	for _, tc := range tests {
		id := pki.NodeIdentity(n, tc.domains...)
		require.Equal(t, "n1", id.Name)
		require.Equal(t, tc.dns, id.DNSNames)
		require.Equal(t, []netip.Addr{labIP, labIP, netip.MustParseAddr("10.78.1.11")}, id.IPs)
	}
	// Issuance deduplicates the repeated address.
	m := newManager(t, memStore(t), newKEK(t))
	b, err := m.Issue(context.Background(), "etcd", pki.Request{Kind: pki.Peer, Identity: pki.NodeIdentity(n, "lab")})
	require.NoError(t, err)
	leaf, err := b.Leaf()
	require.NoError(t, err)
	require.Len(t, leaf.IPAddresses, 2)
}
