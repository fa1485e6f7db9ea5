package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Reloader holds a certificate that can be swapped while listeners and
// clients keep running: every new handshake uses the latest one. Put its
// methods in a tls.Config (ServerConfig and ClientConfig do).
type Reloader struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewReloader returns a Reloader serving b.
func NewReloader(b Bundle) (*Reloader, error) {
	r := &Reloader{}
	if err := r.Update(b); err != nil {
		return nil, err
	}
	return r, nil
}

// Update makes b the certificate for the next handshakes.
func (r *Reloader) Update(b Bundle) error {
	c, err := b.TLSCertificate()
	if err != nil {
		return err
	}
	r.cur.Store(&c)
	return nil
}

// Current returns the certificate handshakes use now.
func (r *Reloader) Current() *tls.Certificate { return r.cur.Load() }

// GetCertificate is a tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cur.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("pki: Reloader has no certificate")
}

// GetClientCertificate is a tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := r.cur.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("pki: Reloader has no certificate")
}

// ServerConfig returns a tls.Config for a server of this service: it
// presents cert's current certificate, requires every client to present a
// certificate for client auth that chains to the service's currently
// trusted roots, and refuses revoked ones. Root rotations and revocations
// known to this Authority (see Refresh) apply to the next handshake.
//
// Clients may send their leaf alone: the authority's own intermediates are
// supplied during verification (openssl s_client -cert sends only the
// first certificate of its file). Because verification happens in
// VerifyConnection, ConnectionState.VerifiedChains stays empty: identify
// the client by PeerCertificates[0], which has been verified when the
// handshake succeeds.
func (a *Authority) ServerConfig(cert *Reloader) *tls.Config {
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.GetCertificate,
		// The handshake insists on a certificate; VerifyConnection below
		// verifies it against the roots and CRL of the moment, including on
		// resumed sessions.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("pki: %s: client presented no certificate", a.service)
			}
			return a.Verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, "")
		},
	}
	cfg := base.Clone()
	// ClientCAs only tells clients which roots are acceptable (the
	// certificate_authorities hint); keep it current.
	cfg.ClientCAs = a.snapshot().roots
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = a.snapshot().roots
		return c, nil
	}
	return cfg
}

// ClientConfig returns a tls.Config for a client of this service: it
// presents cert's current certificate (cert may be nil for a client
// without one), trusts only the service's currently trusted roots (not the
// system's), requires the server certificate to name serverName (a DNS name
// or an IP literal), and refuses revoked servers.
//
// The chain is verified in VerifyConnection rather than through RootCAs so
// that a root rotation reaches long-lived clients; do not clear it.
func (a *Authority) ClientConfig(cert *Reloader, serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		// Verification happens in VerifyConnection below, against the
		// service's roots of the moment.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if serverName == "" {
				return fmt.Errorf("pki: %s: ClientConfig needs the server's name to verify it", a.service)
			}
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("pki: %s: server presented no certificate", a.service)
			}
			return a.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, serverName)
		},
	}
	if cert != nil {
		cfg.GetClientCertificate = cert.GetClientCertificate
	}
	return cfg
}

// Keep holds r at a current certificate for req until ctx ends: every
// interval it calls Issue, which returns the stored certificate until it is
// due for renewal, re-issues after a root rotation, and picks up a renewal
// or revocation made by anyone. When the serial changes, r is updated, so
// listeners and clients using r move to the new certificate without a
// restart. It returns nil when ctx ends; an Issue error ends it early.
func (a *Authority) Keep(ctx context.Context, req Request, r *Reloader, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("pki: Keep needs a positive interval, got %v", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	current := ""
	if c := r.Current(); c != nil && c.Leaf != nil {
		current = serialHex(c.Leaf.SerialNumber)
	}
	for {
		b, err := a.Issue(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pki: keeping %s certificate %q of %q current: %w", req.Kind, req.Identity.Name, a.service, err)
		}
		if b.Serial != current {
			if err := r.Update(b); err != nil {
				return err
			}
			current = b.Serial
			a.m.log.Info("pki: certificate reloaded", "service", a.service, "kind", b.Kind.String(), "name", b.Name, "serial", b.Serial)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
