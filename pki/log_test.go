package pki_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoKeyMaterialInLogs drives every operation of the package (with a
// debug-level logger), formats bundles and errors every way a caller might,
// and scans everything written for private key material: PEM markers and
// every key's DER, in base64 and hex.
func TestNoKeyMaterialInLogs(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := memStore(t)
	kek := newKEK(t)
	m := newManager(t, st, kek, func(o *pki.Options) { o.Logger = logger })

	var keys [][]byte // DER of every private key handed out
	var written []string
	note := func(s string) { written = append(written, s) }
	collect := func(b pki.Bundle) {
		blk, _ := pem.Decode(b.KeyPEM.Reveal())
		require.NotNil(t, blk)
		keys = append(keys, blk.Bytes)
		// Everything a careless caller might print or log.
		note(fmt.Sprint(b))
		note(fmt.Sprintf("%v %+v %#v %s %q %x", b, b, b, b.KeyPEM, b.KeyPEM, b.KeyPEM))
		js, err := json.Marshal(b)
		require.NoError(t, err)
		note(string(js))
		logger.Info("bundle", "bundle", b, "key", b.KeyPEM)
	}

	a, err := m.Open(ctx, "etcd", pki.AuthorityConfig{Intermediate: true, Domains: []string{"lab.example"}})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		b, err := a.Issue(ctx, pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: fmt.Sprintf("n%d", i),
			DNSNames: []string{fmt.Sprintf("n%d.lab.example", i)}, IPs: []netip.Addr{labIP}}})
		require.NoError(t, err)
		collect(b)
	}
	b, err := m.Issue(ctx, "kube-apiserver", clientReq("admin", "system:masters"))
	require.NoError(t, err)
	collect(b)
	r, err := a.Renew(ctx, pki.Peer, "n1")
	require.NoError(t, err)
	collect(r)
	require.NoError(t, a.Revoke(ctx, r.Serial, pki.ReasonKeyCompromise))
	_, err = a.CRL(ctx)
	require.NoError(t, err)
	require.NoError(t, a.RotateRoot(ctx, time.Hour))
	b, err = a.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "n0", DNSNames: []string{"n0.lab.example"}}})
	require.NoError(t, err)
	collect(b)
	note(fmt.Sprintf("%v %+v", a, m))

	// Errors, too: refusals, wrong KEK, no KEK, bad revocations, bad bundles.
	_, err = a.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "x", DNSNames: []string{"*.lab.example"}}})
	note(err.Error())
	_, err = newManager(t, st, newKEK(t)).Load(ctx, "etcd")
	note(err.Error())
	_, err = newManager(t, st, nil).Load(ctx, "etcd")
	note(err.Error())
	note(a.Revoke(ctx, "abc", 0).Error())
	broken := b
	broken.CertPEM = r.CertPEM // key and certificate do not match
	_, err = broken.TLSCertificate()
	note(err.Error())
	chain, err := pemCerts(r.CertPEM)
	require.NoError(t, err)
	note(a.Verify(chain, x509.ExtKeyUsageServerAuth, "").Error())

	// Read back every stored value too: sealed keys must not leak either.
	ents, _, err := st.List(ctx, "pki/")
	require.NoError(t, err)
	var stored strings.Builder
	for _, e := range ents {
		stored.Write(e.Value)
	}

	// The CA keys (root and intermediate, both generations).
	caKeys := pki.CAKeysForTest(a)
	require.Len(t, caKeys, 4)
	keys = append(keys, caKeys...)
	out := logs.String() + strings.Join(written, "\n")
	require.NotEmpty(t, logs.String())
	require.Contains(t, logs.String(), "certificate issued")
	for _, haystack := range []string{out, stored.String()} {
		require.NotContains(t, haystack, "PRIVATE KEY")
		for _, k := range keys {
			for _, enc := range []string{base64.StdEncoding.EncodeToString(k), fmt.Sprintf("%x", k), string(k)} {
				require.NotContains(t, haystack, enc)
			}
			// A 32-byte window of the key's base64 (PEM wraps at 64).
			b64 := base64.StdEncoding.EncodeToString(k)
			require.NotContains(t, haystack, b64[len(b64)/2:len(b64)/2+32])
		}
	}
}
