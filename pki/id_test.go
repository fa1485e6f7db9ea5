package pki_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
)

// Holders that share a common name — every API server presents CN
// "kubernetes" — each keep their own certificate when their identities
// carry IDs: issuing for one does not replace the other's, a re-run returns
// each one's stored certificate, and Renew and Revoke reach one alone.
func TestIdentityIDsKeepSharedCommonNamesApart(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, memStore(t), newKEK(t))
	a, err := m.Open(ctx, "kubernetes", pki.AuthorityConfig{})
	require.NoError(t, err)
	serving := func(node, addr string) pki.Request {
		return pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "kubernetes", ID: "kube-apiserver/" + node,
			DNSNames: []string{"kubernetes.default", node}, IPs: []netip.Addr{netip.MustParseAddr(addr)}}}
	}
	cp1, err := a.Issue(ctx, serving("cp1", "10.78.0.11"))
	require.NoError(t, err)
	cp2, err := a.Issue(ctx, serving("cp2", "10.78.0.12"))
	require.NoError(t, err)
	require.NotEqual(t, cp1.Serial, cp2.Serial)
	require.Equal(t, "kubernetes", cp1.Name)
	require.Equal(t, "kube-apiserver/cp1", cp1.ID)
	for _, b := range []pki.Bundle{cp1, cp2} {
		leaf, err := b.Leaf()
		require.NoError(t, err)
		require.Equal(t, "kubernetes", leaf.Subject.CommonName, "the ID is not the CN")
		require.NotContains(t, strings.Join(leaf.DNSNames, " "), "kube-apiserver/", "the ID is not a SAN")
	}

	again1, err := a.Issue(ctx, serving("cp1", "10.78.0.11"))
	require.NoError(t, err)
	again2, err := a.Issue(ctx, serving("cp2", "10.78.0.12"))
	require.NoError(t, err)
	require.Equal(t, cp1.Serial, again1.Serial, "cp2's issue did not replace cp1's certificate")
	require.Equal(t, cp2.Serial, again2.Serial)

	// Without IDs the same common name is one slot: the second request
	// replaces the first (what the IDs are for).
	plain := func(r pki.Request) pki.Request { r.Identity.ID = ""; return r }
	p1, err := a.Issue(ctx, plain(serving("cp1", "10.78.0.11")))
	require.NoError(t, err)
	_, err = a.Issue(ctx, plain(serving("cp2", "10.78.0.12")))
	require.NoError(t, err)
	p1again, err := a.Issue(ctx, plain(serving("cp1", "10.78.0.11")))
	require.NoError(t, err)
	require.NotEqual(t, p1.Serial, p1again.Serial)
	require.Equal(t, "kubernetes", p1.ID, "no ID: stored under the name")

	renewed, err := a.Renew(ctx, pki.Server, cp1.ID)
	require.NoError(t, err)
	require.NotEqual(t, cp1.Serial, renewed.Serial)
	leaf, err := renewed.Leaf()
	require.NoError(t, err)
	require.Equal(t, "kubernetes", leaf.Subject.CommonName)
	require.Contains(t, leaf.DNSNames, "cp1", "renewal keeps cp1's names")
	still2, err := a.Issue(ctx, serving("cp2", "10.78.0.12"))
	require.NoError(t, err)
	require.Equal(t, cp2.Serial, still2.Serial, "renewing cp1 left cp2 alone")

	// Revoking cp2's certificate drops its slot only: the next issue for
	// cp2 is new, cp1's renewed one stays.
	require.NoError(t, a.Revoke(ctx, cp2.Serial, pki.ReasonSuperseded))
	new2, err := a.Issue(ctx, serving("cp2", "10.78.0.12"))
	require.NoError(t, err)
	require.NotEqual(t, cp2.Serial, new2.Serial)
	still1, err := a.Issue(ctx, serving("cp1", "10.78.0.11"))
	require.NoError(t, err)
	require.Equal(t, renewed.Serial, still1.Serial)
}

// An ID equal to the name is the same as none (a store written before IDs
// existed keeps its certificates), and a malformed ID is refused.
func TestIdentityIDDefaultsAndRefusals(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, memStore(t), newKEK(t))
	a, err := m.Open(ctx, "svc", pki.AuthorityConfig{})
	require.NoError(t, err)
	b1, err := a.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "admin"}})
	require.NoError(t, err)
	b2, err := a.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "admin", ID: "admin"}})
	require.NoError(t, err)
	require.Equal(t, b1.Serial, b2.Serial)
	require.Equal(t, "admin", b2.ID)

	for _, id := range []string{"bad\x00id", strings.Repeat("x", 254), "\xff"} {
		_, err := a.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "u", ID: id}})
		var re *pki.RequestError
		require.ErrorAs(t, err, &re, "%q", id)
		require.Equal(t, "Identity.ID", re.Field)
	}
}
