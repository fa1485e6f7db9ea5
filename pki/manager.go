package pki

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// Manager keeps the certificate authorities of every service in one store.
// It is safe for concurrent use, and several Managers (in several
// controllers) may share a store.
type Manager struct {
	st       store.Store
	kek      *seal.KEK // nil without one
	log      *slog.Logger
	prefix   string
	defaults AuthorityConfig
	now      func() time.Time

	keyMu      sync.Mutex // serializes checkKey
	keyChecked bool

	mu    sync.Mutex
	auths map[string]*Authority
}

// NewManager returns a Manager persisting through st.
func NewManager(st store.Store, opts Options) (*Manager, error) {
	if st == nil {
		return nil, errors.New("pki: NewManager needs a store")
	}
	m := &Manager{st: st, kek: opts.Key, log: opts.Logger, prefix: opts.Prefix, now: opts.Now, auths: map[string]*Authority{}}
	if m.kek == nil && opts.KEK != nil {
		k, err := seal.New(opts.KEK)
		if err != nil {
			return nil, fmt.Errorf("pki: Options.KEK: %w", err)
		}
		m.kek = k
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
	if err := m.checkKey(ctx); err != nil {
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
		if m.kek == nil {
			return nil, fmt.Errorf("pki: creating authority %q: %w (Options.Key) to seal its private key", service, ErrKEKRequired)
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
