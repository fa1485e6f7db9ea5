package pki

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/masonops/mason/store"
)

// revocationRecord is the authority's revocation list and its published
// CRLs, at <prefix><service>/revocations. It is updated only by
// compare-and-swap, so concurrent revocations never lose each other.
type revocationRecord struct {
	Number  int64 // the last CRL number used; grows with every publication
	Revoked []revokedEntry
	CRLs    map[int][]byte // signed CRL (DER) by generation
}

type revokedEntry struct {
	Serial string
	Gen    int
	At     time.Time
	Reason int
}

// Revocation reasons (RFC 5280 CRLReason) for Revoke.
const (
	ReasonUnspecified   = 0
	ReasonKeyCompromise = 1
	ReasonSuperseded    = 4
	ReasonCessation     = 5 // cessationOfOperation: the node is gone
)

// Revoke revokes the certificate with the given serial (hex, colons and
// case ignored) for reason, and publishes a new CRL signed by the CA that
// issued it. Revoking a revoked serial is a no-op. The identity's stored
// certificate is dropped, so the next Issue signs a new one.
func (a *Authority) Revoke(ctx context.Context, serial string, reason int) error {
	sh, ok := normSerial(serial)
	if !ok {
		return fmt.Errorf("pki: revoking in %q: %q is not a hex serial number", a.service, printable(serial))
	}
	e, err := a.m.st.Get(ctx, a.key("serial", sh))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("pki: revoking serial %s: authority %q never issued it", sh, a.service)
	}
	if err != nil {
		return fmt.Errorf("pki: revoking serial %s of %q: %w", sh, a.service, err)
	}
	var sr serialRecord
	if err := json.Unmarshal(e.Value, &sr); err != nil {
		return fmt.Errorf("pki: revoking serial %s of %q: decoding record: %w", sh, a.service, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		if err := a.refreshLocked(ctx); err != nil {
			return err
		}
		st := a.state.Load()
		if _, done := st.revoked[sh]; done {
			return nil
		}
		now := a.m.now()
		rv := st.rv
		rv.Revoked = append(slices.Clone(rv.Revoked), revokedEntry{Serial: sh, Gen: sr.Gen, At: now, Reason: reason})
		if err := a.publish(st, &rv, []int{sr.Gen}, now); err != nil {
			return err
		}
		b, err := json.Marshal(rv)
		if err != nil {
			return fmt.Errorf("pki: revoking serial %s of %q: encoding: %w", sh, a.service, err)
		}
		ops := []store.Op{store.PutOp(a.key("revocations"), b).IfRevision(st.revRev)}
		lkey := a.leafKey(sr.Kind, sr.key())
		if le, err := a.m.st.Get(ctx, lkey); err == nil {
			var lr leafRecord
			if json.Unmarshal(le.Value, &lr) == nil && lr.Serial == sh {
				ops = append(ops, store.DeleteOp(lkey).IfRevision(le.Revision))
			}
		}
		rev, err := a.m.st.Txn(ctx, ops...)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pki: revoking serial %s of %q: %w", sh, a.service, err)
		}
		if err := a.adoptRevocations(rv, rev); err != nil {
			return err
		}
		a.m.log.Info("pki: certificate revoked", "service", a.service, "serial", sh, "kind", sr.Kind.String(),
			"name", sr.Name, "reason", reason, "crl_number", rv.Number)
		return nil
	}
	return fmt.Errorf("pki: revoking serial %s of %q: the revocation list kept changing under concurrent writers; retry", sh, a.service)
}

func (a *Authority) adoptRevocations(rv revocationRecord, rev int64) error {
	st := a.state.Load()
	nst, err := a.build(st.rec, st.authRev, rv, rev, st)
	if err != nil {
		return err
	}
	a.state.Store(nst)
	return nil
}

// publish re-signs the CRLs of the given generations into rv.
func (a *Authority) publish(st *state, rv *revocationRecord, gens []int, now time.Time) error {
	crls := make(map[int][]byte, len(rv.CRLs)+1)
	for g, der := range rv.CRLs {
		if st.gen(g) != nil { // drop CRLs of generations no longer kept
			crls[g] = der
		}
	}
	for _, n := range gens {
		g := st.gen(n)
		if g == nil {
			continue // its root is gone; nothing it signed is trusted any more
		}
		rv.Number++
		tmpl := &x509.RevocationList{
			Number:     big.NewInt(rv.Number),
			ThisUpdate: now.Add(-5 * time.Minute),
			NextUpdate: now.Add(st.rec.Config.CRLValidity),
		}
		for _, r := range rv.Revoked {
			if r.Gen != n {
				continue
			}
			s, _ := new(big.Int).SetString(r.Serial, 16)
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
				x509.RevocationListEntry{SerialNumber: s, RevocationTime: r.At, ReasonCode: r.Reason})
		}
		issuer, key := g.issuer()
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
		if err != nil {
			return fmt.Errorf("pki: signing CRL of %q generation %d: %w", a.service, n, err)
		}
		crls[n] = der
	}
	rv.CRLs = crls
	return nil
}

// CRL returns the signed CRLs (PEM, one per trusted root generation) that
// list every revoked certificate. CRLs missing or past half their validity
// are re-signed and published to the store first.
func (a *Authority) CRL(ctx context.Context) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		if err := a.refreshLocked(ctx); err != nil {
			return nil, err
		}
		st := a.state.Load()
		now := a.m.now()
		var stale []int
		for _, g := range st.gens {
			if !g.trusted(now) {
				continue
			}
			der, ok := st.rv.CRLs[g.rec.Gen]
			if ok {
				crl, err := x509.ParseRevocationList(der)
				if err == nil && now.Before(crl.ThisUpdate.Add(crl.NextUpdate.Sub(crl.ThisUpdate)/2)) {
					continue
				}
			}
			stale = append(stale, g.rec.Gen)
		}
		if len(stale) == 0 {
			var out []byte
			for _, g := range st.gens {
				if der, ok := st.rv.CRLs[g.rec.Gen]; ok && g.trusted(now) {
					out = append(out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})...)
				}
			}
			return out, nil
		}
		rv := st.rv
		rv.Revoked = slices.Clone(rv.Revoked)
		if err := a.publish(st, &rv, stale, now); err != nil {
			return nil, err
		}
		b, err := json.Marshal(rv)
		if err != nil {
			return nil, fmt.Errorf("pki: publishing CRL of %q: encoding: %w", a.service, err)
		}
		rev, err := a.m.st.CompareAndSwap(ctx, a.key("revocations"), st.revRev, b)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: publishing CRL of %q: %w", a.service, err)
		}
		if err := a.adoptRevocations(rv, rev); err != nil {
			return nil, err
		}
		a.m.log.Info("pki: CRL published", "service", a.service, "crl_number", rv.Number, "revoked", len(rv.Revoked))
	}
	return nil, fmt.Errorf("pki: publishing CRL of %q: the revocation list kept changing under concurrent writers; retry", a.service)
}

// Revoked reports whether the serial (hex) is revoked, as far as this
// controller knows (see Refresh).
func (a *Authority) Revoked(serial string) bool {
	sh, ok := normSerial(serial)
	if !ok {
		return false
	}
	_, ok = a.snapshot().revoked[sh]
	return ok
}

// normSerial canonicalizes a hex serial: colons and case ignored, no
// leading zeros.
func normSerial(s string) (string, bool) {
	n, ok := new(big.Int).SetString(strings.ReplaceAll(s, ":", ""), 16)
	if !ok || n.Sign() <= 0 {
		return "", false
	}
	return serialHex(n), true
}

// key is the identity the serial was issued to, as leaves are stored.
func (sr serialRecord) key() string {
	if sr.ID != "" {
		return sr.ID
	}
	return sr.Name
}
