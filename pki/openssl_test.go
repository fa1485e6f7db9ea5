package pki_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
)

// requireOpenSSL returns the openssl binary. Outside CI a missing binary
// skips the test; in CI (where .ci/debian-packages installs openssl) it fails.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("openssl not installed: the cross-check against Debian's openssl needs it (apt-get install openssl)")
		}
		t.Fatalf("openssl not found in CI: %v", err)
	}
	return p
}

func openssl(t *testing.T, bin string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFiles(t *testing.T, files map[string][]byte) string {
	dir := t.TempDir()
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	return dir
}

// TestOpenSSLVerify checks mason's certificates and CRLs with
// `openssl verify -CAfile`, for each key algorithm, with and without an
// intermediate and name constraints.
func TestOpenSSLVerify(t *testing.T) {
	bin := requireOpenSSL(t)
	tests := []struct {
		alg   pki.Algorithm
		inter bool
		cfg   pki.AuthorityConfig
	}{
		{pki.ECDSAP256, false, pki.AuthorityConfig{}},
		{pki.ECDSAP256, true, pki.AuthorityConfig{Domains: []string{"lab.example"}}},
		{pki.Ed25519, true, pki.AuthorityConfig{}},
		{pki.RSA2048, false, pki.AuthorityConfig{Domains: []string{"lab.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.alg.String()+map[bool]string{true: "/intermediate", false: ""}[tc.inter], func(t *testing.T) {
			ctx := context.Background()
			m := newManager(t, memStore(t), newKEK(t))
			cfg := tc.cfg
			cfg.Algorithm, cfg.Intermediate = tc.alg, tc.inter
			a, err := m.Open(ctx, "etcd", cfg)
			require.NoError(t, err)
			good, err := a.Issue(ctx, serverReq("n1", "n1.lab.example"))
			require.NoError(t, err)
			client, err := a.Issue(ctx, clientReq("system:node:n1", "system:nodes"))
			require.NoError(t, err)
			bad, err := a.Issue(ctx, serverReq("n2", "n2.lab.example"))
			require.NoError(t, err)
			require.NoError(t, a.Revoke(ctx, bad.Serial, pki.ReasonKeyCompromise))
			crl, err := a.CRL(ctx)
			require.NoError(t, err)

			split := func(b pki.Bundle) (leaf, rest []byte) {
				i := bytes.Index(b.CertPEM, []byte("-----END CERTIFICATE-----\n")) + len("-----END CERTIFICATE-----\n")
				return b.CertPEM[:i], b.CertPEM[i:]
			}
			gl, chain := split(good)
			cl, _ := split(client)
			bl, _ := split(bad)
			files := map[string][]byte{"ca.pem": a.CAPEM(), "good.pem": gl, "client.pem": cl, "bad.pem": bl, "crl.pem": crl}
			if tc.inter {
				files["chain.pem"] = chain
			}
			dir := writeFiles(t, files)
			args := func(extra ...string) []string {
				as := []string{"verify", "-CAfile", filepath.Join(dir, "ca.pem")}
				if tc.inter {
					as = append(as, "-untrusted", filepath.Join(dir, "chain.pem"))
				}
				return append(as, extra...)
			}

			out, err := openssl(t, bin, nil, args("-purpose", "sslserver", filepath.Join(dir, "good.pem"))...)
			require.NoError(t, err, out)
			require.Contains(t, out, "good.pem: OK")
			out, err = openssl(t, bin, nil, args("-purpose", "sslclient", filepath.Join(dir, "client.pem"))...)
			require.NoError(t, err, out)
			require.Contains(t, out, "client.pem: OK")
			out, err = openssl(t, bin, nil, args("-crl_check", "-CRLfile", filepath.Join(dir, "crl.pem"), filepath.Join(dir, "good.pem"))...)
			require.NoError(t, err, out)
			require.Contains(t, out, "good.pem: OK")
			out, err = openssl(t, bin, nil, args("-crl_check", "-CRLfile", filepath.Join(dir, "crl.pem"), filepath.Join(dir, "bad.pem"))...)
			require.Error(t, err, out)
			require.Contains(t, out, "certificate revoked")
			// A client certificate is not a server certificate.
			out, err = openssl(t, bin, nil, args("-purpose", "sslserver", filepath.Join(dir, "client.pem"))...)
			require.Error(t, err, out)
			require.Contains(t, out, "unsuitable certificate purpose")
		})
	}
}

// TestOpenSSLHandshake connects Debian's `openssl s_client` to a mason
// mutual-TLS server on loopback.
func TestOpenSSLHandshake(t *testing.T) {
	bin := requireOpenSSL(t)
	f := newTLSFixture(t, true)
	admin, err := f.etcd.Issue(f.ctx, clientReq("admin", "system:masters"))
	require.NoError(t, err)
	stranger, err := f.other.Issue(f.ctx, clientReq("admin"))
	require.NoError(t, err)
	dir := writeFiles(t, map[string][]byte{
		"ca.pem": f.etcd.CAPEM(), "admin.crt": admin.CertPEM, "admin.key": admin.KeyPEM.Reveal(),
		"stranger.crt": stranger.CertPEM, "stranger.key": stranger.KeyPEM.Reveal(),
	})
	sclient := func(extra ...string) []string {
		return append([]string{"s_client", "-connect", f.srv.addr, "-CAfile", filepath.Join(dir, "ca.pem"),
			"-verify_return_error", "-verify_ip", "127.0.0.1", "-ign_eof"}, extra...)
	}

	tests := []struct {
		name      string
		args      []string
		serverErr string
	}{
		{"client certificate from the service root", sclient("-cert", filepath.Join(dir, "admin.crt"), "-key", filepath.Join(dir, "admin.key")), ""},
		{"TLS 1.2 too", sclient("-tls1_2", "-cert", filepath.Join(dir, "admin.crt"), "-key", filepath.Join(dir, "admin.key")), ""},
		{"no client certificate", sclient(), "didn't provide a certificate"},
		{"client certificate from another root", sclient("-cert", filepath.Join(dir, "stranger.crt"), "-key", filepath.Join(dir, "stranger.key")), "unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := openssl(t, bin, nil, tc.args...)
			serr := f.srv.serverErr(t)
			if tc.serverErr == "" {
				require.NoError(t, serr)
				require.Contains(t, out, "Verify return code: 0 (ok)", "openssl verified the server against the service root")
				require.Contains(t, out, "hello admin "+admin.Serial)
				return
			}
			require.ErrorContains(t, serr, tc.serverErr)
			require.NotContains(t, out, "hello ")
		})
	}

	t.Run("s_client refuses a server from another root", func(t *testing.T) {
		otherCA := writeFiles(t, map[string][]byte{"ca.pem": f.other.CAPEM()})
		out, err := openssl(t, bin, nil, "s_client", "-connect", f.srv.addr, "-CAfile", filepath.Join(otherCA, "ca.pem"),
			"-verify_return_error", "-cert", filepath.Join(dir, "admin.crt"), "-key", filepath.Join(dir, "admin.key"))
		require.Error(t, err, out)
		require.True(t, strings.Contains(out, "unable to get local issuer certificate") || strings.Contains(out, "unable to get issuer certificate"), out)
		_ = f.srv.serverErr(t)
	})
}
