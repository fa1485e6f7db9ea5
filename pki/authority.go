package pki

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masonops/mason/store"
)

// Authority is one service's certificate authority. Its methods are safe
// for concurrent use. Reads (handshakes, Verify) use an immutable snapshot
// and wait for a writer only at the moment a trust window ends.
type Authority struct {
	m       *Manager
	service string

	mu    sync.Mutex // serializes writers and rebuilds
	state atomic.Pointer[state]
}

// Service returns the service the authority belongs to.
func (a *Authority) Service() string { return a.service }

// String names the authority; it never shows key material.
func (a *Authority) String() string { return fmt.Sprintf("pki.Authority(%s)", a.service) }

func (a *Authority) mismatch(want AuthorityConfig) error {
	have := a.state.Load().rec.Config
	return fmt.Errorf("pki: authority %q exists with a different configuration (stored: %s; requested: %s); keep the stored one or use another service name",
		a.service, describeConfig(have), describeConfig(want))
}

func (a *Authority) key(parts ...string) string {
	return a.m.prefix + a.service + "/" + strings.Join(parts, "/")
}

// authorityRecord is what the store holds at <prefix><service>/authority.
type authorityRecord struct {
	Service     string
	Config      AuthorityConfig
	Generations []generationRecord // oldest first; the last is current
}

func (a *Authority) create(ctx context.Context, cfg AuthorityConfig) error {
	now := a.m.now()
	g, err := a.newGeneration(cfg, 1, now)
	if err != nil {
		return err
	}
	rec := authorityRecord{Service: a.service, Config: cfg, Generations: []generationRecord{g.rec}}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("pki: authority %q: encoding record: %w", a.service, err)
	}
	rev, err := a.m.st.CompareAndSwap(ctx, a.key("authority"), 0, b)
	if err != nil {
		return fmt.Errorf("pki: creating authority %q: %w", a.service, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &state{authRev: rev, rec: rec, gens: []*generation{g}, revoked: map[string]revokedEntry{}}
	st.computeTrust(now)
	a.state.Store(st)
	a.m.log.Info("pki: authority created", "service", a.service, "algorithm", cfg.Algorithm.String(),
		"intermediate", cfg.Intermediate, "domains", cfg.Domains, "root_serial", serialHex(g.root.SerialNumber),
		"root_not_after", g.root.NotAfter)
	return nil
}

// Refresh re-reads the authority and its revocations from the store, to
// pick up a root rotation or revocation made by another controller.
func (a *Authority) Refresh(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refreshLocked(ctx)
}

func (a *Authority) refreshLocked(ctx context.Context) error {
	e, err := a.m.st.Get(ctx, a.key("authority"))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("pki: authority %q: %w", a.service, ErrNoAuthority)
	}
	if err != nil {
		return fmt.Errorf("pki: reading authority %q: %w", a.service, err)
	}
	var rv revocationRecord
	var revRev int64
	re, err := a.m.st.Get(ctx, a.key("revocations"))
	switch {
	case err == nil:
		if err := json.Unmarshal(re.Value, &rv); err != nil {
			return fmt.Errorf("pki: authority %q: decoding revocations: %w", a.service, err)
		}
		revRev = re.Revision
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("pki: reading revocations of %q: %w", a.service, err)
	}
	old := a.state.Load()
	if old != nil && old.authRev == e.Revision && old.revRev == revRev {
		return nil
	}
	var rec authorityRecord
	if old != nil && old.authRev == e.Revision {
		rec = old.rec
	} else if err := json.Unmarshal(e.Value, &rec); err != nil {
		return fmt.Errorf("pki: authority %q: decoding record: %w", a.service, err)
	}
	st, err := a.build(rec, e.Revision, rv, revRev, old)
	if err != nil {
		return err
	}
	a.state.Store(st)
	return nil
}

// build assembles a state, reusing opened generations from old.
func (a *Authority) build(rec authorityRecord, authRev int64, rv revocationRecord, revRev int64, old *state) (*state, error) {
	if len(rec.Generations) == 0 {
		return nil, fmt.Errorf("pki: authority %q: stored record has no root", a.service)
	}
	st := &state{authRev: authRev, rec: rec, rv: rv, revRev: revRev, revoked: map[string]revokedEntry{}}
	for _, gr := range rec.Generations {
		var g *generation
		if old != nil {
			for _, og := range old.gens {
				if og.rec.Gen == gr.Gen && string(og.rec.Root) == string(gr.Root) {
					cp := *og
					cp.rec = gr
					g = &cp
				}
			}
		}
		if g == nil {
			var err error
			if g, err = a.openGeneration(gr); err != nil {
				return nil, err
			}
		}
		st.gens = append(st.gens, g)
	}
	for _, r := range rv.Revoked {
		st.revoked[r.Serial] = r
	}
	st.computeTrust(a.m.now())
	return st, nil
}

// state is an immutable snapshot of an authority.
type state struct {
	authRev int64
	rec     authorityRecord
	gens    []*generation // oldest first; last is current

	revRev  int64
	rv      revocationRecord
	revoked map[string]revokedEntry // by serial hex

	// Trust, valid until staleAt.
	roots   *x509.CertPool
	inters  *x509.CertPool
	caPEM   []byte
	staleAt time.Time
}

func (s *state) current() *generation { return s.gens[len(s.gens)-1] }

func (s *state) gen(n int) *generation {
	for _, g := range s.gens {
		if g.rec.Gen == n {
			return g
		}
	}
	return nil
}

// computeTrust fills the pools from the generations trusted at now.
func (s *state) computeTrust(now time.Time) {
	s.roots, s.inters, s.caPEM, s.staleAt = x509.NewCertPool(), x509.NewCertPool(), nil, time.Time{}
	for _, g := range s.gens {
		if !g.trusted(now) {
			continue
		}
		s.roots.AddCert(g.root)
		s.caPEM = append(s.caPEM, certPEM(g.root.Raw)...)
		if g.inter != nil {
			s.inters.AddCert(g.inter)
		}
		for _, t := range []time.Time{g.rec.TrustUntil, g.root.NotAfter} {
			if !t.IsZero() && (s.staleAt.IsZero() || t.Before(s.staleAt)) {
				s.staleAt = t
			}
		}
	}
}

// snapshot returns the current state with trust valid for now.
func (a *Authority) snapshot() *state {
	st := a.state.Load()
	now := a.m.now()
	if st.staleAt.IsZero() || now.Before(st.staleAt) {
		return st
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st = a.state.Load()
	if !st.staleAt.IsZero() && !now.Before(st.staleAt) {
		cp := *st
		cp.computeTrust(now)
		a.state.Store(&cp)
		st = &cp
	}
	return st
}

// Roots returns the root certificates trusted now: the current root and,
// during a rotation's overlap window, the previous one.
func (a *Authority) Roots() []*x509.Certificate {
	var out []*x509.Certificate
	now := a.m.now()
	for _, g := range a.snapshot().gens {
		if g.trusted(now) {
			out = append(out, g.root)
		}
	}
	return out
}

// CAPEM returns the trusted roots (see Roots) as PEM, the file to give
// clients and servers as their CA bundle.
func (a *Authority) CAPEM() []byte { return slices.Clone(a.snapshot().caPEM) }

// RootPool returns the trusted roots as a pool.
func (a *Authority) RootPool() *x509.CertPool { return a.snapshot().roots.Clone() }
