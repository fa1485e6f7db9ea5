package pki

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/store"
)

// Issuer is what roles use to obtain certificates mid-workflow. *Manager
// implements it; roles declare it as a role.Uses[pki.Issuer] input.
type Issuer interface {
	// Issue returns a certificate for req from service's authority,
	// creating the authority with the Manager's defaults on first use. The
	// same request returns the same certificate until it is due for
	// renewal.
	Issue(ctx context.Context, service string, req Request) (Bundle, error)
	// Revoke revokes the certificate with the given serial (hex) and
	// publishes a new CRL.
	Revoke(ctx context.Context, service, serial string) error
	// CAPEM returns the roots service's peers must trust.
	CAPEM(ctx context.Context, service string) ([]byte, error)
}

var _ Issuer = (*Manager)(nil)

// authority returns service's authority, creating it with the defaults.
func (m *Manager) authority(ctx context.Context, service string) (*Authority, error) {
	m.mu.Lock()
	a, ok := m.auths[service]
	m.mu.Unlock()
	if ok {
		return a, nil
	}
	// A stored authority is loaded whatever its configuration; only a new
	// one takes the defaults.
	a, err := m.Load(ctx, service)
	if errors.Is(err, ErrNoAuthority) {
		return m.open(ctx, service, &m.defaults)
	}
	return a, err
}

// Issue implements Issuer.
func (m *Manager) Issue(ctx context.Context, service string, req Request) (Bundle, error) {
	a, err := m.authority(ctx, service)
	if err != nil {
		return Bundle{}, err
	}
	return a.Issue(ctx, req)
}

// Revoke implements Issuer.
func (m *Manager) Revoke(ctx context.Context, service, serial string) error {
	a, err := m.Load(ctx, service)
	if err != nil {
		return err
	}
	return a.Revoke(ctx, serial, 0)
}

// CAPEM implements Issuer.
func (m *Manager) CAPEM(ctx context.Context, service string) ([]byte, error) {
	a, err := m.authority(ctx, service)
	if err != nil {
		return nil, err
	}
	return a.CAPEM(), nil
}

// leafRecord is the current certificate of one identity, at
// <prefix><service>/leaf/<kind>/<id> (the identity's ID, or its Name).
type leafRecord struct {
	Request  Request // normalized
	Gen      int
	Serial   string
	Cert     []byte // DER
	Key      []byte // sealed PKCS#8
	NotAfter time.Time
}

// serialRecord is every issued certificate, at <prefix><service>/serial/<hex>.
// It is written create-only, so two controllers can never record the same
// serial twice.
type serialRecord struct {
	Kind     Kind
	Name     string
	ID       string `json:",omitempty"` // Identity.ID; "" means Name
	Gen      int
	NotAfter time.Time
	Cert     []byte // DER
}

func (a *Authority) leafKey(k Kind, id string) string {
	return a.key("leaf", k.String(), url.PathEscape(id))
}

// Issue returns a certificate for req. If the store already holds one for
// the same kind, identity and profile, signed by the current root, not
// revoked and not yet due for renewal, Issue returns that one; otherwise it
// signs a new one with a new key. Refused requests return a *RequestError.
func (a *Authority) Issue(ctx context.Context, req Request) (Bundle, error) {
	return a.issue(ctx, req, false)
}

// Renew replaces the stored certificate of the identity kind/id with a new
// one for the same identity and profile, with a new key. id is the
// identity's ID, or its Name when it has none (Bundle.ID is either).
func (a *Authority) Renew(ctx context.Context, kind Kind, id string) (Bundle, error) {
	e, err := a.m.st.Get(ctx, a.leafKey(kind, id))
	if errors.Is(err, store.ErrNotFound) {
		return Bundle{}, fmt.Errorf("pki: renewing %s certificate %q of %q: none was issued; call Issue first", kind, printable(id), a.service)
	}
	if err != nil {
		return Bundle{}, fmt.Errorf("pki: renewing %s certificate %q of %q: %w", kind, printable(id), a.service, err)
	}
	var rec leafRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return Bundle{}, fmt.Errorf("pki: renewing %s certificate %q of %q: decoding record: %w", kind, printable(id), a.service, err)
	}
	return a.issue(ctx, rec.Request, true)
}

func (a *Authority) issue(ctx context.Context, req Request, force bool) (Bundle, error) {
	st := a.snapshot()
	cfg := st.rec.Config
	nreq, err := req.normalize(a.service, cfg.constraints(), cfg.Algorithm)
	if err != nil {
		a.m.log.Warn("pki: request refused", "service", a.service, "error", err.Error())
		return Bundle{}, err
	}
	lkey := a.leafKey(nreq.Kind, nreq.Identity.key())
	for attempt := 0; attempt < 5; attempt++ {
		var leafRev int64
		e, err := a.m.st.Get(ctx, lkey)
		switch {
		case err == nil:
			leafRev = e.Revision
			if !force {
				if b, ok, err := a.reuse(st, e.Value, nreq); err != nil || ok {
					return b, err
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return Bundle{}, fmt.Errorf("pki: issuing %s certificate %q of %q: reading store: %w", nreq.Kind, nreq.Identity.Name, a.service, err)
		}
		b, err := a.sign(ctx, st, nreq, lkey, leafRev)
		if errors.Is(err, store.ErrConflict) {
			// Another controller issued for this identity (or, improbably,
			// drew the same serial) at the same moment. Look again.
			force = false
			st = a.snapshot()
			continue
		}
		return b, err
	}
	return Bundle{}, fmt.Errorf("pki: issuing %s certificate %q of %q: kept conflicting with concurrent issuers; retry", nreq.Kind, nreq.Identity.Name, a.service)
}

// reuse returns the stored certificate if it still fits the request.
func (a *Authority) reuse(st *state, raw []byte, req Request) (Bundle, bool, error) {
	var rec leafRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return Bundle{}, false, nil // unreadable: replace it
	}
	now := a.m.now()
	if rec.Gen != st.current().rec.Gen || rec.Request.Kind != req.Kind || !sameIdentity(rec.Request.Identity, req.Identity) ||
		rec.Request.Profile != req.Profile || !now.Before(rec.NotAfter.Add(-req.Profile.RenewBefore)) {
		return Bundle{}, false, nil
	}
	if _, revoked := st.revoked[rec.Serial]; revoked {
		return Bundle{}, false, nil
	}
	if a.m.kek == nil {
		return Bundle{}, false, fmt.Errorf("pki: authority %q: stored key of %s %q: %w", a.service, req.Kind, req.Identity.Name, ErrKEKRequired)
	}
	der, err := a.m.openSealed(rec.Key, a.key("leaf", rec.Serial))
	if err != nil {
		return Bundle{}, false, fmt.Errorf("pki: authority %q: stored key of %s %q: %w", a.service, req.Kind, req.Identity.Name, err)
	}
	return a.bundle(st, st.current(), req, rec.Serial, rec.Cert, der, rec.NotAfter), true, nil
}

func (a *Authority) bundle(st *state, g *generation, req Request, serial string, cert, keyDER []byte, notAfter time.Time) Bundle {
	chain := certPEM(cert)
	if g.inter != nil {
		chain = append(chain, certPEM(g.inter.Raw)...)
	}
	return Bundle{
		Service:  a.service,
		Kind:     req.Kind,
		Name:     req.Identity.Name,
		ID:       req.Identity.key(),
		Serial:   serial,
		NotAfter: notAfter,
		CertPEM:  chain,
		KeyPEM:   attr.Conceal(keyPEM(keyDER)),
		CAPEM:    st.caPEM,
	}
}

// sign creates, records and returns a new certificate.
func (a *Authority) sign(ctx context.Context, st *state, req Request, lkey string, leafRev int64) (Bundle, error) {
	fail := func(what string, err error) (Bundle, error) {
		return Bundle{}, fmt.Errorf("pki: issuing %s certificate %q of %q: %s: %w", req.Kind, req.Identity.Name, a.service, what, err)
	}
	if a.m.kek == nil {
		return fail("sealing its key", ErrKEKRequired)
	}
	g := st.current()
	issuer, issuerKey := g.issuer()
	now := a.m.now()
	notAfter := now.Add(req.Profile.Validity)
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	if notAfter.Sub(now) < time.Minute {
		return fail("the CA", fmt.Errorf("expires at %s, too soon to issue; rotate the root", issuer.NotAfter))
	}
	key, err := req.Profile.Algorithm.generate()
	if err != nil {
		return fail("generating key", err)
	}
	serial, err := newSerial()
	if err != nil {
		return fail("serial", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Identity.Name, Organization: req.Identity.Groups},
		DNSNames:              req.Identity.DNSNames,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.Kind.extKeyUsage(),
		BasicConstraintsValid: true,
	}
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, ip := range req.Identity.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		return fail("signing", err)
	}
	keyDER, err := marshalKey(key)
	if err != nil {
		return fail("encoding key", err)
	}
	sh := serialHex(serial)
	sealed, err := a.m.kek.Seal(keyDER, []byte(a.key("leaf", sh)))
	if err != nil {
		return fail("sealing key", err)
	}
	leaf, err := json.Marshal(leafRecord{Request: req, Gen: g.rec.Gen, Serial: sh, Cert: der, Key: sealed, NotAfter: notAfter})
	if err != nil {
		return fail("encoding record", err)
	}
	sr, err := json.Marshal(serialRecord{Kind: req.Kind, Name: req.Identity.Name, ID: req.Identity.ID, Gen: g.rec.Gen, NotAfter: notAfter, Cert: der})
	if err != nil {
		return fail("encoding record", err)
	}
	if _, err := a.m.st.Txn(ctx,
		store.PutOp(a.key("serial", sh), sr).IfRevision(0),
		store.PutOp(lkey, leaf).IfRevision(leafRev),
	); err != nil {
		return fail("recording it", err)
	}
	if a.m.log.Enabled(ctx, slog.LevelInfo) {
		a.m.log.Info("pki: certificate issued", "service", a.service, "kind", req.Kind.String(), "name", req.Identity.Name, "id", req.Identity.key(),
			"serial", sh, "generation", g.rec.Gen, "dns", req.Identity.DNSNames, "ips", fmt.Sprint(req.Identity.IPs), "not_after", notAfter)
	}
	return a.bundle(st, g, req, sh, der, keyDER, notAfter), nil
}
