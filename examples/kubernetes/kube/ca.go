package kube

import (
	"context"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// CAs makes sure the cluster's authorities exist — the cluster CA and the
// front-proxy CA — and the service-account key pair, issued from an
// authority of its own so its key is sealed in the pki store like every
// other. (etcd's authority is examples/etcd's CA role.)
type CAs struct{}

// CAsIn is the pki service.
type CAsIn struct {
	Issuer role.Uses[pki.Issuer]
}

// CAsOut holds the trust bundles (public) and the service-account
// certificate, whose public key verifies tokens.
type CAsOut struct {
	ClusterCA    []byte
	FrontProxyCA []byte
	// ServiceAccount is the public half of the token-signing key pair.
	ServiceAccount Cert
}

// Meta implements role.Role.
func (CAs) Meta() role.Meta {
	return role.Meta{Name: "kube-ca", Version: "1", Scope: role.ScopeService,
		Doc: "creates the cluster CA, the front-proxy CA and the service-account key pair"}
}

// Run implements role.Role.
func (CAs) Run(ctx context.Context, rc *role.Context, in CAsIn) (CAsOut, error) {
	issuer := in.Issuer.Value
	var out CAsOut
	var err error
	if out.ClusterCA, err = issuer.CAPEM(ctx, ClusterCA); err != nil {
		return CAsOut{}, err
	}
	if out.FrontProxyCA, err = issuer.CAPEM(ctx, FrontProxyCA); err != nil {
		return CAsOut{}, err
	}
	sa, err := issue(ctx, rc, issuer, ServiceAccounts, saRequest)
	if err != nil {
		return CAsOut{}, err
	}
	out.ServiceAccount = certOf(sa, KubernetesDir+"/service-account.crt")
	return out, nil
}

var saRequest = pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "service-accounts"}, Profile: saProfile}

// installServiceAccount writes the token key pair for the API server
// (which signs and verifies) and the controller-manager (which signs).
func installServiceAccount(ctx context.Context, rc *role.Context, issuer pki.Issuer) (Cert, error) {
	sa, err := issue(ctx, rc, issuer, ServiceAccounts, saRequest)
	if err != nil {
		return Cert{}, err
	}
	return install(ctx, rc.Node().Transport, sa, KubernetesDir, "service-account", "service-account-ca.crt")
}
