package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
)

// Bundle is an issued certificate with everything its holder needs: the
// certificate chain, the private key and the CA bundle to trust. Roles pass
// it on as an output; printing, logging or JSON-encoding it never shows the
// key (attr.Secret), while gob (the journal) carries it.
type Bundle struct {
	Service  string
	Kind     Kind
	Name     string    // Identity.Name: the certificate's CN
	ID       string    // what the certificate is stored under: Identity.ID, or Name (for Authority.Renew)
	Serial   string    // hex
	NotAfter time.Time // the leaf's expiry
	// CertPEM is the leaf certificate followed by any intermediate: the
	// file servers load as their certificate.
	CertPEM []byte
	// KeyPEM is the leaf's PKCS#8 private key in PEM.
	KeyPEM attr.Secret[[]byte]
	// CAPEM holds the roots to trust (two during a root rotation's overlap).
	CAPEM []byte
}

// String describes the bundle without its key.
func (b Bundle) String() string {
	return fmt.Sprintf("pki.Bundle{%s %s %q serial %s, expires %s}", b.Service, b.Kind, b.Name, b.Serial, b.NotAfter.UTC().Format(time.RFC3339))
}

// LogValue implements slog.LogValuer; the key is left out.
func (b Bundle) LogValue() slog.Value {
	return slog.GroupValue(slog.String("service", b.Service), slog.String("kind", b.Kind.String()),
		slog.String("name", b.Name), slog.String("serial", b.Serial), slog.Time("not_after", b.NotAfter))
}

// TLSCertificate returns the bundle as a tls.Certificate (with Leaf set).
func (b Bundle) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM.Reveal())
	if err != nil {
		// tls errors describe structure, never key bytes; still, say only
		// what the caller needs.
		return tls.Certificate{}, fmt.Errorf("pki: bundle %s %q serial %s: certificate and key do not form a pair: %w", b.Service, b.Name, b.Serial, err)
	}
	return c, nil
}

// ClientTLS returns a client config for a pki.Client (or pki.Peer)
// bundle: it presents the bundle's certificate, trusts only the bundle's
// CA, and requires the server's certificate to name serverName (a DNS name
// or an IP literal). Use Authority.ClientConfig instead when the authority
// is at hand: it also follows root rotation and renewals.
func (b Bundle) ClientTLS(serverName string) (*tls.Config, error) {
	cert, err := b.TLSCertificate()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CAPEM) {
		return nil, fmt.Errorf("pki: bundle %s %q has no CA certificate to trust", b.Service, b.Name)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

// Leaf parses and returns the leaf certificate.
func (b Bundle) Leaf() (*x509.Certificate, error) {
	blk, _ := pem.Decode(b.CertPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: bundle %s %q: CertPEM holds no certificate", b.Service, b.Name)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Files says where Install writes a bundle on a node.
type Files struct {
	Cert string // leaf + intermediates, mode 0644
	Key  string // private key, mode 0600
	CA   string // trusted roots, mode 0644
	// Owner and Group own all three files when set (e.g. "etcd").
	Owner, Group string
}

// FilesIn returns the conventional layout in dir: NAME.crt, NAME.key and
// ca.crt.
func FilesIn(dir, name string) Files {
	return Files{Cert: path.Join(dir, name+".crt"), Key: path.Join(dir, name+".key"), CA: path.Join(dir, "ca.crt")}
}

// Install writes the bundle to a node through t: the key with mode 0600,
// the certificate and the CA bundle with 0644. Empty paths are skipped.
func (b Bundle) Install(ctx context.Context, t provider.Transport, f Files) error {
	files := []struct {
		path string
		data []byte
		mode uint32
	}{
		{f.Key, b.KeyPEM.Reveal(), 0o600},
		{f.Cert, b.CertPEM, 0o644},
		{f.CA, b.CAPEM, 0o644},
	}
	for _, w := range files {
		if w.path == "" {
			continue
		}
		opts := provider.FileOptions{Mode: 0o644, Owner: f.Owner, Group: f.Group}
		if w.mode == 0o600 {
			opts.Mode = 0o600
		}
		if err := t.Put(ctx, w.path, bytes.NewReader(w.data), opts); err != nil {
			return fmt.Errorf("pki: installing %s %q certificate to %s: %w", b.Service, b.Name, w.path, err)
		}
	}
	return nil
}

// NodeIdentity is the identity of a node for server and peer certificates:
// its name as the CN; as DNS names, its name under each of domains (or the
// bare name when no domain is given); as IPs, its interface, private and
// public addresses. Trim the result before issuing when an authority's
// networks do not cover all of them.
func NodeIdentity(n *provider.Node, domains ...string) Identity {
	id := Identity{Name: n.Name}
	if len(domains) == 0 {
		id.DNSNames = []string{n.Name}
	}
	for _, d := range domains {
		id.DNSNames = append(id.DNSNames, n.Name+"."+d)
	}
	if n.InterfaceAddr.IsValid() {
		id.IPs = append(id.IPs, n.InterfaceAddr)
	}
	id.IPs = append(id.IPs, n.PrivateAddrs...)
	id.IPs = append(id.IPs, n.PublicAddrs...)
	return id
}
