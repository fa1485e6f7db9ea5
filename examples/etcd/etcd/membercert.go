package etcd

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"time"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// MemberCert issues a member's peer certificate (server and client usage,
// as etcd requires for peers) naming only that member — its name under the
// deployment's domain and its own addresses — and installs it on the node,
// the key with mode 0600.
type MemberCert struct{}

// MemberCertIn waits for the authority.
type MemberCertIn struct {
	CA     role.One[CAOut]
	Domain string `attr:"etcd.domain"`
	Issuer role.Uses[pki.Issuer]
}

// MemberCertOut describes the installed certificate. It carries no private
// key: the key lives on the node and in the pki store (sealed), never in
// the journal.
type MemberCertOut struct {
	Files    pki.Files
	Serial   string
	NotAfter time.Time
	CertPEM  []byte
	CAPEM    []byte
}

// Meta implements role.Role.
func (MemberCert) Meta() role.Meta {
	return role.Meta{Name: "etcd-member-cert", Version: "1", Doc: "issues and installs a member's peer certificate"}
}

// Run implements role.Role.
func (MemberCert) Run(ctx context.Context, rc *role.Context, in MemberCertIn) (MemberCertOut, error) {
	b, err := in.Issuer.Value.Issue(ctx, Service, pki.Request{Kind: pki.Peer, Identity: pki.NodeIdentity(rc.Node(), in.Domain)})
	if err != nil {
		return MemberCertOut{}, fmt.Errorf("member certificate for %s: %w", rc.Node().Name, err)
	}
	files := pki.FilesIn(PKIDir, "member")
	if err := b.Install(ctx, rc.Node().Transport, files); err != nil {
		return MemberCertOut{}, err
	}
	return MemberCertOut{Files: files, Serial: b.Serial, NotAfter: b.NotAfter, CertPEM: b.CertPEM, CAPEM: b.CAPEM}, nil
}

// Check reports drift when the installed certificate is missing or differs
// from the one issued.
func (MemberCert) Check(ctx context.Context, rc *role.Context, _ MemberCertIn, last MemberCertOut) (string, error) {
	got, err := rc.Node().Transport.Get(ctx, last.Files.Cert)
	if err != nil {
		return path.Base(last.Files.Cert) + " is missing", nil
	}
	if !bytes.Equal(got, last.CertPEM) {
		return path.Base(last.Files.Cert) + " was changed", nil
	}
	return "", nil
}
