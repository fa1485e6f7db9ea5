package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// generationRecord is one root (and its intermediate) as stored.
type generationRecord struct {
	Gen          int
	Root         []byte // DER
	RootKey      []byte // sealed PKCS#8
	Intermediate []byte `json:",omitempty"`
	InterKey     []byte `json:",omitempty"`
	// TrustUntil ends trust in a rotated-out generation; zero for the
	// current one.
	TrustUntil time.Time `json:",omitzero"`
}

// generation is a generationRecord with its keys opened.
type generation struct {
	rec      generationRecord
	root     *x509.Certificate
	rootKey  crypto.Signer
	inter    *x509.Certificate
	interKey crypto.Signer
}

// issuer returns the certificate and key that sign leaves and CRLs.
func (g *generation) issuer() (*x509.Certificate, crypto.Signer) {
	if g.inter != nil {
		return g.inter, g.interKey
	}
	return g.root, g.rootKey
}

func (g *generation) trusted(now time.Time) bool {
	return (g.rec.TrustUntil.IsZero() || now.Before(g.rec.TrustUntil)) && now.Before(g.root.NotAfter)
}

func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	// Positive and never zero, 126 random bits: collisions are not a
	// practical concern, and the store's create-only write catches one.
	b[0] = b[0]&0x3f | 0x40
	return new(big.Int).SetBytes(b), nil
}

func serialHex(n *big.Int) string { return fmt.Sprintf("%x", n) }

// newGeneration creates and seals a root (and intermediate) for cfg.
func (a *Authority) newGeneration(cfg AuthorityConfig, gen int, now time.Time) (*generation, error) {
	rootKey, err := cfg.Algorithm.generate()
	if err != nil {
		return nil, fmt.Errorf("pki: authority %q: generating root key: %w", a.service, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	root := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s root CA %d", a.service, gen), Organization: []string{cfg.Organization}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(cfg.RootValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		MaxPathLenZero:        !cfg.Intermediate,
	}
	if cfg.Intermediate {
		root.MaxPathLen = 1
	}
	if len(cfg.Domains) > 0 || len(cfg.Networks) > 0 {
		root.PermittedDNSDomainsCritical = true
		root.PermittedDNSDomains = cfg.Domains
		for _, p := range cfg.Networks {
			root.PermittedIPRanges = append(root.PermittedIPRanges, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("pki: authority %q: signing root: %w", a.service, err)
	}
	g := &generation{rec: generationRecord{Gen: gen, Root: der}, rootKey: rootKey}
	if g.root, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("pki: authority %q: parsing new root: %w", a.service, err)
	}
	if g.rec.RootKey, err = a.sealKey(rootKey, a.key("gen", fmt.Sprint(gen), "root")); err != nil {
		return nil, err
	}
	if !cfg.Intermediate {
		return g, nil
	}
	interKey, err := cfg.Algorithm.generate()
	if err != nil {
		return nil, fmt.Errorf("pki: authority %q: generating intermediate key: %w", a.service, err)
	}
	if serial, err = newSerial(); err != nil {
		return nil, err
	}
	notAfter := now.Add(cfg.IntermediateValidity)
	if notAfter.After(g.root.NotAfter) {
		notAfter = g.root.NotAfter
	}
	inter := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s intermediate CA %d", a.service, gen), Organization: []string{cfg.Organization}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		MaxPathLenZero:        true,
	}
	if der, err = x509.CreateCertificate(rand.Reader, inter, g.root, interKey.Public(), rootKey); err != nil {
		return nil, fmt.Errorf("pki: authority %q: signing intermediate: %w", a.service, err)
	}
	g.rec.Intermediate = der
	g.interKey = interKey
	if g.inter, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("pki: authority %q: parsing new intermediate: %w", a.service, err)
	}
	if g.rec.InterKey, err = a.sealKey(interKey, a.key("gen", fmt.Sprint(gen), "intermediate")); err != nil {
		return nil, err
	}
	return g, nil
}

// openGeneration parses a stored generation and opens its keys.
func (a *Authority) openGeneration(r generationRecord) (*generation, error) {
	g := &generation{rec: r}
	var err error
	if g.root, err = x509.ParseCertificate(r.Root); err != nil {
		return nil, fmt.Errorf("pki: authority %q generation %d: parsing root: %w", a.service, r.Gen, err)
	}
	if g.rootKey, err = a.openKey(r.RootKey, a.key("gen", fmt.Sprint(r.Gen), "root")); err != nil {
		return nil, err
	}
	if r.Intermediate != nil {
		if g.inter, err = x509.ParseCertificate(r.Intermediate); err != nil {
			return nil, fmt.Errorf("pki: authority %q generation %d: parsing intermediate: %w", a.service, r.Gen, err)
		}
		if g.interKey, err = a.openKey(r.InterKey, a.key("gen", fmt.Sprint(r.Gen), "intermediate")); err != nil {
			return nil, err
		}
	}
	return g, nil
}
