package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masonops/mason/store"
)

// Options configure a Manager.
type Options struct {
	// KEK is the key-encryption key (16, 24 or 32 bytes; use 32) that seals
	// every private key the Manager stores. Keep it outside the store (a
	// file only the controller can read, a KMS). Without it no authority can
	// be created or loaded.
	KEK []byte
	// Logger receives one line per authority created, certificate issued,
	// revoked or rotated. It never receives key material. nil discards.
	Logger *slog.Logger
	// Prefix is the store key prefix; "" means "pki/".
	Prefix string
	// Defaults configure the authorities that Issue creates on first use of
	// a service name.
	Defaults AuthorityConfig
	// Now is the clock; nil means time.Now. Tests use it to issue
	// certificates that have already expired.
	Now func() time.Time
}

// AuthorityConfig describes a service's certificate authority.
//
// The path-length limit is fixed by the shape: a root without an
// intermediate has MaxPathLen 0 (it signs only leaves); with an intermediate
// the root has MaxPathLen 1 and the intermediate 0.
type AuthorityConfig struct {
	// Algorithm of the CA keys (and, by default, of the leaves); 0 means
	// ECDSA P-256.
	Algorithm Algorithm
	// Intermediate, when true, makes the root sign only an intermediate CA,
	// which signs the leaves. The root key is then used only for rotation.
	Intermediate bool
	// Domains, when set, name-constrain the root: it can only vouch for
	// these DNS domains and names under them, and requests for any other
	// name are refused.
	Domains []string
	// Networks, when set, constrain the IP addresses the root can vouch for.
	Networks []netip.Prefix
	// Organization is the CA subject's organization; "" means "mason".
	Organization string
	// RootValidity is the root's lifetime; 0 means 10 years.
	RootValidity time.Duration
	// IntermediateValidity is the intermediate's lifetime; 0 means 5 years,
	// cut to the root's.
	IntermediateValidity time.Duration
	// CRLValidity is how long a published CRL is valid (its nextUpdate);
	// 0 means 7 days. CRL refreshes it when half of that has passed.
	CRLValidity time.Duration
}

func (c AuthorityConfig) normalize() (AuthorityConfig, error) {
	if c.Algorithm == 0 {
		c.Algorithm = ECDSAP256
	}
	if !c.Algorithm.valid() {
		return c, fmt.Errorf("pki: unknown key algorithm %v", c.Algorithm)
	}
	var doms []string
	for _, d := range c.Domains {
		n, why := checkDNSName(strings.TrimPrefix(d, "."))
		if why != "" {
			return c, fmt.Errorf("pki: permitted domain %q: %s", d, why)
		}
		doms = append(doms, n)
	}
	slices.Sort(doms)
	c.Domains = slices.Compact(doms)
	var nets []netip.Prefix
	for _, p := range c.Networks {
		if !p.IsValid() {
			return c, fmt.Errorf("pki: permitted network %v is not a valid prefix", p)
		}
		nets = append(nets, p.Masked())
	}
	slices.SortFunc(nets, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	c.Networks = slices.Compact(nets)
	if c.Organization == "" {
		c.Organization = "mason"
	}
	if c.RootValidity == 0 {
		c.RootValidity = 10 * 365 * 24 * time.Hour
	}
	if c.IntermediateValidity == 0 {
		c.IntermediateValidity = 5 * 365 * 24 * time.Hour
	}
	if c.IntermediateValidity > c.RootValidity {
		c.IntermediateValidity = c.RootValidity
	}
	if c.CRLValidity == 0 {
		c.CRLValidity = 7 * 24 * time.Hour
	}
	if c.RootValidity < time.Hour || c.CRLValidity < time.Minute {
		return c, fmt.Errorf("pki: root validity must be at least an hour and CRL validity at least a minute")
	}
	return c, nil
}

func (c AuthorityConfig) equal(o AuthorityConfig) bool {
	return c.Algorithm == o.Algorithm && c.Intermediate == o.Intermediate &&
		slices.Equal(c.Domains, o.Domains) && slices.Equal(c.Networks, o.Networks) &&
		c.Organization == o.Organization && c.RootValidity == o.RootValidity &&
		c.IntermediateValidity == o.IntermediateValidity && c.CRLValidity == o.CRLValidity
}

func (c AuthorityConfig) constraints() constraints {
	return constraints{domains: c.Domains, networks: c.Networks}
}

// Manager keeps the certificate authorities of every service in one store.
// It is safe for concurrent use, and several Managers (in several
// controllers) may share a store.
type Manager struct {
	st       store.Store
	seal     *sealer // nil without a KEK
	log      *slog.Logger
	prefix   string
	defaults AuthorityConfig
	now      func() time.Time

	mu    sync.Mutex
	auths map[string]*Authority
}

// NewManager returns a Manager persisting through st.
func NewManager(st store.Store, opts Options) (*Manager, error) {
	if st == nil {
		return nil, errors.New("pki: NewManager needs a store")
	}
	m := &Manager{st: st, log: opts.Logger, prefix: opts.Prefix, now: opts.Now, auths: map[string]*Authority{}}
	if opts.KEK != nil {
		s, err := newSealer(opts.KEK)
		if err != nil {
			return nil, err
		}
		m.seal = s
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.prefix == "" {
		m.prefix = "pki/"
	}
	if m.now == nil {
		m.now = time.Now
	}
	d, err := opts.Defaults.normalize()
	if err != nil {
		return nil, fmt.Errorf("pki: Options.Defaults: %w", err)
	}
	m.defaults = d
	return m, nil
}

// String names the Manager; it never shows key material.
func (m *Manager) String() string { return fmt.Sprintf("pki.Manager(%s)", m.prefix) }

// ErrNoAuthority is returned by Load for a service that has no authority.
var ErrNoAuthority = errors.New("pki: no such authority")

// checkService validates a service name: it becomes part of store keys and
// CA subjects.
func checkService(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("pki: service name %q must be 1 to 63 characters", printable(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("pki: service name %q may only contain lower-case letters, digits, '-', '_' and '.'", printable(s))
		}
	}
	return nil
}

// Open returns the authority of service, creating it with cfg if the store
// has none. An existing authority must have been created with the same
// configuration; to change it, use a new service name or rotate.
func (m *Manager) Open(ctx context.Context, service string, cfg AuthorityConfig) (*Authority, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("pki: authority %q: %w", service, err)
	}
	return m.open(ctx, service, &cfg)
}

// Load returns the existing authority of service, or an error matching
// ErrNoAuthority.
func (m *Manager) Load(ctx context.Context, service string) (*Authority, error) {
	return m.open(ctx, service, nil)
}

func (m *Manager) open(ctx context.Context, service string, cfg *AuthorityConfig) (*Authority, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.auths[service]; ok {
		if cfg != nil && !cfg.equal(a.state.Load().rec.Config) {
			return nil, a.mismatch(*cfg)
		}
		return a, nil
	}
	a := &Authority{m: m, service: service}
	for attempt := 0; ; attempt++ {
		err := a.Refresh(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNoAuthority) {
			return nil, err
		}
		if cfg == nil {
			return nil, fmt.Errorf("pki: authority %q: %w; create it with Manager.Open", service, ErrNoAuthority)
		}
		if m.seal == nil {
			return nil, fmt.Errorf("pki: creating authority %q: %w (Options.KEK) to seal its private key", service, ErrKEKRequired)
		}
		err = a.create(ctx, *cfg)
		if err == nil {
			break
		}
		// Another controller created it first: load theirs.
		if !errors.Is(err, store.ErrConflict) || attempt > 2 {
			return nil, err
		}
	}
	if cfg != nil && !cfg.equal(a.state.Load().rec.Config) {
		return nil, a.mismatch(*cfg)
	}
	m.auths[service] = a
	return a, nil
}

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

func describeConfig(c AuthorityConfig) string {
	return fmt.Sprintf("algorithm %v, intermediate %v, domains %v, networks %v", c.Algorithm, c.Intermediate, c.Domains, c.Networks)
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

func (a *Authority) sealKey(k crypto.Signer, where string) ([]byte, error) {
	if a.m.seal == nil {
		return nil, fmt.Errorf("pki: authority %q: %w (Options.KEK) to store private keys", a.service, ErrKEKRequired)
	}
	der, err := marshalKey(k)
	if err != nil {
		return nil, err
	}
	return a.m.seal.seal(der, where)
}

func (a *Authority) openKey(sealed []byte, where string) (crypto.Signer, error) {
	if a.m.seal == nil {
		return nil, fmt.Errorf("pki: authority %q is persisted with sealed private keys: %w (Options.KEK, the key it was created with)", a.service, ErrKEKRequired)
	}
	der, err := a.m.seal.open(sealed, where)
	if err != nil {
		return nil, fmt.Errorf("pki: authority %q: %w", a.service, err)
	}
	return parseKey(der)
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

// RotateRoot creates a new root (and intermediate) and makes it current.
// The previous root stays trusted for overlap, so certificates it issued
// keep working while their holders renew; Issue signs with the new root
// from now on and re-issues every stored certificate on its next call.
func (a *Authority) RotateRoot(ctx context.Context, overlap time.Duration) error {
	if overlap < 0 {
		return fmt.Errorf("pki: rotating %q: negative overlap %v", a.service, overlap)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		if err := a.refreshLocked(ctx); err != nil {
			return err
		}
		st := a.state.Load()
		now := a.m.now()
		cur := st.current()
		g, err := a.newGeneration(st.rec.Config, cur.rec.Gen+1, now)
		if err != nil {
			return err
		}
		rec := st.rec
		rec.Generations = nil
		for _, old := range st.rec.Generations {
			if old.Gen == cur.rec.Gen {
				old.TrustUntil = now.Add(overlap)
			}
			// Generations whose trust has ended are dropped for good.
			if !old.TrustUntil.IsZero() && !now.Before(old.TrustUntil) {
				continue
			}
			rec.Generations = append(rec.Generations, old)
		}
		rec.Generations = append(rec.Generations, g.rec)
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("pki: rotating %q: encoding record: %w", a.service, err)
		}
		rev, err := a.m.st.CompareAndSwap(ctx, a.key("authority"), st.authRev, b)
		if errors.Is(err, store.ErrConflict) {
			continue // someone else changed it; re-read and try again
		}
		if err != nil {
			return fmt.Errorf("pki: rotating %q: %w", a.service, err)
		}
		old := *st
		old.gens = append(slices.Clone(st.gens), g)
		nst, err := a.build(rec, rev, st.rv, st.revRev, &old)
		if err != nil {
			return err
		}
		a.state.Store(nst)
		a.m.log.Info("pki: root rotated", "service", a.service, "generation", g.rec.Gen,
			"root_serial", serialHex(g.root.SerialNumber), "previous_trusted_until", now.Add(overlap))
		return nil
	}
	return fmt.Errorf("pki: rotating %q: the authority kept changing under concurrent writers; retry", a.service)
}

// Follow keeps the authority in step with the store until ctx ends: root
// rotations and revocations made by other controllers reach Verify, the
// TLS configs and Issue moments after they are written. Run it in a
// goroutine you wait for; it returns nil when ctx ends and an error when
// the store fails.
func (a *Authority) Follow(ctx context.Context) error {
	ch, err := a.m.st.Watch(ctx, a.key(""), 0)
	if err != nil {
		return fmt.Errorf("pki: following authority %q: %w", a.service, err)
	}
	// Anything written before the watch started is picked up here.
	if err := a.Refresh(ctx); err != nil {
		return err
	}
	authKey, revKey := a.key("authority"), a.key("revocations")
	for ev := range ch {
		if ev.Key != authKey && ev.Key != revKey {
			continue
		}
		if err := a.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("pki: following authority %q: the store closed its watch", a.service)
}
