package pki_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
)

// FuzzIssue feeds arbitrary names, addresses and CNs through the issuance
// path of a name-constrained authority. It must never panic; a request is
// either refused with a *RequestError, or yields a certificate that names
// exactly valid, permitted identities and verifies against the root.
func FuzzIssue(f *testing.F) {
	seeds := []struct {
		kind           uint8
		name, dns, ips string
		groups         string
	}{
		{1, "n1", "n1.lab.example", "10.78.0.11", ""},
		{3, "n1", "n1.lab.example,N1.LAB.EXAMPLE.", "10.78.0.11,::ffff:10.78.0.12", ""},
		{2, "system:node:n1", "", "", "system:nodes"},
		{2, "admin", "", "", "system:masters,dev"},
		{1, "n1", "*.lab.example", "", ""},
		{1, "n1", "n1.evil.example", "", ""},
		{1, "n1", "evillab.example", "", ""},
		{1, "n1", "", "192.0.2.1", ""},
		{1, "n1", "", "0.0.0.0", ""},
		{1, "n1", "", "not-an-ip", ""},
		{1, "n1", "10.78.0.1", "", ""},
		{1, "n1", "a..lab.example", "", ""},
		{1, "n1", "-a.lab.example", "", ""},
		{1, "n1", "xn--bcher-kva.lab.example", "fe80::1%eth0", ""},
		{1, "n1", strings.Repeat("a", 64) + ".lab.example", "", ""},
		{2, "", "", "", ""},
		{2, "a\x00b", "", "", ""},
		{2, "\xff\xfe", "", "", ""},
		{2, "*", "", "", ""},
		{2, strings.Repeat("é", 40), "", "", ""},
		{0, "n1", "n1.lab.example", "", ""},
		{9, "n1", "n1.lab.example", "", ""},
		{3, "n1", "", "", ""},
		{1, "n1", "lab.example", "10.78.255.255", "g1,"},
	}
	for _, s := range seeds {
		f.Add(s.kind, s.name, s.dns, s.ips, s.groups)
	}
	ctx := context.Background()
	m := newManager(f, memStore(f), newKEK(f))
	a, err := m.Open(ctx, "fuzz", pki.AuthorityConfig{
		Domains:  []string{"lab.example"},
		Networks: []netip.Prefix{netip.MustParsePrefix("10.78.0.0/16")},
	})
	require.NoError(f, err)
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}

	f.Fuzz(func(t *testing.T, kind uint8, name, dns, ips, groups string) {
		req := pki.Request{Kind: pki.Kind(kind), Identity: pki.Identity{Name: name, DNSNames: split(dns), Groups: split(groups)}}
		for _, s := range split(ips) {
			ip, _ := netip.ParseAddr(s) // an unparsable address stays the zero Addr, which must be refused
			req.Identity.IPs = append(req.Identity.IPs, ip)
		}
		b, err := a.Issue(ctx, req)
		if err != nil {
			var re *pki.RequestError
			require.True(t, errors.As(err, &re), "only refusals are expected, got %v", err)
			require.ErrorIs(t, err, pki.ErrRefused)
			return
		}
		leaf, err := b.Leaf()
		require.NoError(t, err)
		require.Equal(t, name, leaf.Subject.CommonName)
		chain, err := pemCerts(b.CertPEM)
		require.NoError(t, err)
		usage := x509.ExtKeyUsageServerAuth
		if req.Kind == pki.Client {
			usage = x509.ExtKeyUsageClientAuth
		}
		require.NoError(t, a.Verify(chain, usage, ""))
		for _, n := range leaf.DNSNames {
			require.NotContains(t, n, "*")
			require.True(t, n == "lab.example" || strings.HasSuffix(n, ".lab.example"), n)
			require.NoError(t, a.Verify(chain, usage, n))
		}
		for _, ip := range leaf.IPAddresses {
			addr, ok := netip.AddrFromSlice(ip)
			require.True(t, ok)
			require.True(t, netip.MustParsePrefix("10.78.0.0/16").Contains(addr.Unmap()), ip.String())
			require.NoError(t, a.Verify(chain, usage, addr.Unmap().String()))
		}
		if req.Kind != pki.Client {
			require.NotEmpty(t, append(leaf.DNSNames, func() []string {
				var s []string
				for _, ip := range leaf.IPAddresses {
					s = append(s, ip.String())
				}
				return s
			}()...), "server and peer certificates name their node")
		}
	})
}
