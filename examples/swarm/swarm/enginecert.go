package swarm

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"time"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// EngineCert issues an engine's server certificate from the "docker"
// authority, naming exactly its node — its name under the deployment's
// domain and its own addresses, no wildcard — and installs it on the node,
// the key with mode 0600.
type EngineCert struct{}

// EngineCertIn waits for the authority.
type EngineCertIn struct {
	CA     role.One[CAOut]
	Domain string `attr:"swarm.domain"`
	Issuer role.Uses[pki.Issuer]
}

// EngineCertOut describes the installed certificate. It carries no private
// key: the key lives on the node and in the pki store (sealed), never in
// the journal.
type EngineCertOut struct {
	Files    pki.Files
	Serial   string
	NotAfter time.Time
	CertPEM  []byte
}

// Meta implements role.Role.
func (EngineCert) Meta() role.Meta {
	return role.Meta{Name: "docker-engine-cert", Version: "1", Doc: "issues and installs the engine's server certificate"}
}

// Run implements role.Role.
func (EngineCert) Run(ctx context.Context, rc *role.Context, in EngineCertIn) (EngineCertOut, error) {
	return installServerCert(ctx, rc, in.Issuer.Value, DockerCA, in.Domain, pki.FilesIn(EnginePKIDir, "server"))
}

// Check reports drift when the installed certificate is missing or differs
// from the one issued.
func (EngineCert) Check(ctx context.Context, rc *role.Context, _ EngineCertIn, last EngineCertOut) (string, error) {
	return certDrift(ctx, rc, last), nil
}

// installServerCert issues the node's server certificate from service and
// installs it in files.
func installServerCert(ctx context.Context, rc *role.Context, issuer pki.Issuer, service, domain string, files pki.Files) (EngineCertOut, error) {
	n := rc.Node()
	id := pki.NodeIdentity(n, domain)
	id.IPs = id.IPs[:0:0]
	id.IPs = append(id.IPs, n.InterfaceAddr) // the address it serves on, nothing else
	b, err := issuer.Issue(ctx, service, pki.Request{Kind: pki.Server, Identity: id})
	if err != nil {
		return EngineCertOut{}, fmt.Errorf("%s server certificate for %s: %w", service, n.Name, err)
	}
	if err := b.Install(ctx, n.Transport, files); err != nil {
		return EngineCertOut{}, err
	}
	return EngineCertOut{Files: files, Serial: b.Serial, NotAfter: b.NotAfter, CertPEM: b.CertPEM}, nil
}

func certDrift(ctx context.Context, rc *role.Context, last EngineCertOut) string {
	got, err := rc.Node().Transport.Get(ctx, last.Files.Cert)
	if err != nil {
		return path.Base(last.Files.Cert) + " is missing"
	}
	if !bytes.Equal(got, last.CertPEM) {
		return path.Base(last.Files.Cert) + " was changed"
	}
	return ""
}
