package etcdstore_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// testCA is a throwaway certificate authority made with crypto/x509.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and key (PEM) for cn; server leaves are
// bound to 127.0.0.1.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// TestTLS runs etcd with server certificates and required client
// certificates, and checks which client configurations get in: only one
// that trusts the cluster's CA and presents a certificate from it.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "etcd test CA")
	other := newCA(t, "some other CA")
	srvCert, srvKey := ca.issue(t, "etcd-m0", true)
	cliCert, cliKey := ca.issue(t, "mason-controller", false)
	strangerCert, strangerKey := other.issue(t, "stranger", false)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	otherRoots := x509.NewCertPool()
	otherRoots.AppendCertsFromPEM(other.pem)
	good, err := tls.X509KeyPair(cliCert, cliKey)
	require.NoError(t, err)
	stranger, err := tls.X509KeyPair(strangerCert, strangerKey)
	require.NoError(t, err)
	clientTLS := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}, MinVersion: tls.VersionTLS12}

	c := etcdtest.Start(t, etcdtest.Options{TLS: &etcdtest.ServerTLS{
		CertFile:      writeFile(t, dir, "server.pem", srvCert),
		KeyFile:       writeFile(t, dir, "server-key.pem", srvKey),
		TrustedCAFile: writeFile(t, dir, "ca.pem", ca.pem),
		Client:        clientTLS,
	}})
	require.Contains(t, c.Endpoints()[0], "https://")

	for _, tc := range []struct {
		name    string
		tls     *tls.Config
		wantErr string // "" when the client must get in
	}{
		{"client certificate from the cluster CA", clientTLS, ""},
		{"no client certificate", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, "bad certificate"},
		{"client certificate from another CA", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{stranger}, MinVersion: tls.VersionTLS12}, "bad certificate"},
		{"server not trusted", &tls.Config{RootCAs: otherRoots, Certificates: []tls.Certificate{good}, MinVersion: tls.VersionTLS12}, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t, 20*time.Second)
			s, err := etcdstore.Open(ctx, etcdstore.Options{
				Endpoints:   c.Endpoints(),
				Prefix:      "tls/",
				TLS:         tc.tls,
				DialTimeout: time.Second,
			})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr, "the handshake must be refused, and the error must say why")
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			rev, err := s.Put(ctx, "secret-free", []byte("over mutual TLS"))
			require.NoError(t, err)
			e, err := s.Get(ctx, "secret-free")
			require.NoError(t, err)
			require.Equal(t, rev, e.Revision)
			require.Equal(t, "over mutual TLS", string(e.Value))
		})
	}
}
