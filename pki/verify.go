package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// ErrRevoked is matched (errors.Is) by the error Verify returns for a
// revoked certificate.
var ErrRevoked = errors.New("pki: certificate is revoked")

// Verify checks that chain (the leaf first, then any intermediates the peer
// sent) leads to one of the authority's trusted roots, is valid now for
// usage, names dnsName when it is not empty (a DNS name or an IP literal),
// and that no certificate in it is revoked.
func (a *Authority) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) error {
	if len(chain) == 0 {
		return fmt.Errorf("pki: %s: no certificate to verify", a.service)
	}
	st := a.snapshot()
	inters := st.inters.Clone()
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         st.roots,
		Intermediates: inters,
		DNSName:       dnsName,
		KeyUsages:     []x509.ExtKeyUsage{usage},
		CurrentTime:   a.m.now(),
	})
	if err != nil {
		return fmt.Errorf("pki: certificate %q (serial %x) failed verification by authority %q: %w",
			chain[0].Subject.CommonName, chain[0].SerialNumber, a.service, err)
	}
	return checkRevoked(a.service, st, chains)
}

func checkRevoked(service string, st *state, chains [][]*x509.Certificate) error {
	for _, ch := range chains {
		for _, c := range ch[:len(ch)-1] { // roots are trusted by definition
			if r, ok := st.revoked[serialHex(c.SerialNumber)]; ok {
				return fmt.Errorf("pki: certificate %q (serial %s) of %q was revoked at %s: %w",
					c.Subject.CommonName, r.Serial, service, r.At.UTC().Format(time.RFC3339), ErrRevoked)
			}
		}
	}
	return nil
}

// VerifyOptions configure VerifyPEM.
type VerifyOptions struct {
	// Usage the leaf must allow; 0 means x509.ExtKeyUsageAny.
	Usage x509.ExtKeyUsage
	// DNSName, when set, must be named by the leaf (a DNS name or an IP).
	DNSName string
	// Now is the time to verify at; zero means time.Now().
	Now time.Time
}

// VerifyPEM verifies a certificate the way a node would, from files alone:
// certPEM (leaf, then intermediates) must chain to a root in caPEM, and
// crlPEM must hold a current CRL signed by the leaf's issuer that does not
// list the leaf. A missing, expired or wrongly signed CRL fails the check:
// a revocation check that cannot be made is not passed.
func VerifyPEM(certPEM, caPEM, crlPEM []byte, opts VerifyOptions) error {
	certs, err := parseCerts(certPEM)
	if err != nil || len(certs) == 0 {
		return fmt.Errorf("pki: verify: no certificate in certPEM")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("pki: verify: no CA certificate in caPEM")
	}
	inters := x509.NewCertPool()
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	usage := opts.Usage
	if usage == 0 {
		usage = x509.ExtKeyUsageAny
	}
	leaf := certs[0]
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: opts.DNSName,
		KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: now})
	if err != nil {
		return fmt.Errorf("pki: verify: certificate %q (serial %x): %w", leaf.Subject.CommonName, leaf.SerialNumber, err)
	}
	if len(chains[0]) < 2 {
		return fmt.Errorf("pki: verify: certificate %q is itself one of the trusted roots, not a leaf", leaf.Subject.CommonName)
	}
	var crls []*x509.RevocationList
	for rest := crlPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "X509 CRL" {
			continue
		}
		crl, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			return fmt.Errorf("pki: verify: parsing CRL: %w", err)
		}
		crls = append(crls, crl)
	}
	issuer := chains[0][1]
	for _, crl := range crls {
		if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if now.After(crl.NextUpdate) {
			return fmt.Errorf("pki: verify: the CRL of %q expired at %s; fetch a current one (Authority.CRL)", issuer.Subject.CommonName, crl.NextUpdate.UTC().Format(time.RFC3339))
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return fmt.Errorf("pki: verify: certificate %q (serial %x) was revoked at %s: %w",
					leaf.Subject.CommonName, leaf.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339), ErrRevoked)
			}
		}
		return nil
	}
	return fmt.Errorf("pki: verify: crlPEM holds no CRL signed by %q, the leaf's issuer; cannot check revocation", issuer.Subject.CommonName)
}

func parseCerts(p []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, p = pem.Decode(p)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}
