package kube

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"path"
	"time"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// certProfile: leaves live a year; the service-account key pair, which signs
// every token, ten (renewing it would invalidate every token at once).
var (
	leafProfile = pki.Profile{Validity: 365 * 24 * time.Hour}
	saProfile   = pki.Profile{Validity: 10 * 365 * 24 * time.Hour}
)

// issue asks the pki service for a certificate. The same request returns
// the same certificate until it is due for renewal, so a re-run changes
// nothing; the key never leaves the pki store except onto the node.
func issue(ctx context.Context, rc *role.Context, issuer pki.Issuer, service string, req pki.Request) (pki.Bundle, error) {
	if req.Profile == (pki.Profile{}) {
		req.Profile = leafProfile
	}
	b, err := issuer.Issue(ctx, service, req)
	if err != nil {
		where := "the deployment"
		if n := rc.Node(); n != nil {
			where = n.Name
		}
		return pki.Bundle{}, fmt.Errorf("%s certificate %q from authority %q for %s: %w", req.Kind, req.Identity.Name, service, where, err)
	}
	return b, nil
}

// Cert is what a role reports about a certificate it installed: enough to
// check the files later, nothing secret.
type Cert struct {
	Service  string
	Name     string
	Serial   string
	NotAfter time.Time
	File     string // the certificate's path on the node
	CertPEM  []byte
}

func certOf(b pki.Bundle, file string) Cert {
	return Cert{Service: b.Service, Name: b.Name, Serial: b.Serial, NotAfter: b.NotAfter, File: file, CertPEM: b.CertPEM}
}

// install writes a bundle's certificate and key as dir/name.crt and
// dir/name.key (0600), and the CA bundle as dir/caName when caName is set.
func install(ctx context.Context, t provider.Transport, b pki.Bundle, dir, name, caName string) (Cert, error) {
	f := pki.Files{Cert: path.Join(dir, name+".crt"), Key: path.Join(dir, name+".key")}
	if caName != "" {
		f.CA = path.Join(dir, caName)
	}
	if err := b.Install(ctx, t, f); err != nil {
		return Cert{}, fmt.Errorf("installing %s: %w", f.Cert, err)
	}
	return certOf(b, f.Cert), nil
}

// certsDrift reports the first installed certificate that is missing or
// differs from the one issued.
func certsDrift(ctx context.Context, n *provider.Node, certs ...Cert) string {
	for _, c := range certs {
		got, err := n.Transport.Get(ctx, c.File)
		if err != nil {
			return c.File + " is missing"
		}
		if !bytes.Equal(got, c.CertPEM) {
			return c.File + " was changed"
		}
	}
	return ""
}

// nodeIdentity names a node for server certificates: its name and its
// interface address, nothing else.
func nodeIdentity(n *provider.Node, name string, groups ...string) pki.Identity {
	return pki.Identity{Name: name, DNSNames: []string{n.Name}, IPs: []netip.Addr{n.InterfaceAddr}, Groups: groups}
}

// kubeconfig renders a kubeconfig with embedded certificates, as
// `kubectl config set-cluster --embed-certs` writes it.
func kubeconfig(server, user string, caPEM []byte, b pki.Bundle) []byte {
	e := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    certificate-authority-data: %[2]s
    server: %[3]s
users:
- name: %[4]s
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: default
  context:
    cluster: %[1]s
    user: %[4]s
current-context: default
`, clusterName, e(caPEM), server, user, e(b.CertPEM), e(b.KeyPEM.Reveal()))
}
