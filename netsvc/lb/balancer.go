package lb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
)

// DefaultPrefix is where frontends are kept in the store.
const DefaultPrefix = "netsvc/lb/"

// Options tune New. The zero value is usable.
type Options struct {
	// Prefix is the store key prefix; empty means DefaultPrefix.
	Prefix string
	// Logger receives health changes and proxy errors; nil discards them.
	Logger *slog.Logger
}

// Balancer runs TCP frontends. It is safe for concurrent use. Close it to
// stop every frontend; the store keeps them for the next Balancer.
type Balancer struct {
	st     store.Store
	prefix string
	log    *slog.Logger

	bufs bufPool // copy buffers of every frontend's connections

	mu     sync.Mutex
	fronts map[string]*frontend
	closed bool
}

var _ netsvc.LoadBalancer = (*Balancer)(nil)

// record is what the store keeps per frontend.
type record struct {
	Frontend netsvc.Frontend `json:"frontend"`
	// Bound is the address the frontend listened on, so a restart reuses
	// a port picked with ":0".
	Bound    string           `json:"bound"`
	Backends []netsvc.Backend `json:"backends"`
}

// New starts the frontends kept in st. A frontend that cannot listen again
// (its address is taken) is reported in the error, and the others run.
func New(ctx context.Context, st store.Store, opts *Options) (*Balancer, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Balancer{st: st, prefix: o.Prefix, log: o.Logger, fronts: map[string]*frontend{}}
	ents, _, err := st.List(ctx, b.prefix+"frontends/")
	if err != nil {
		return nil, fmt.Errorf("lb: loading frontends: %w", err)
	}
	var errs []error
	for _, e := range ents {
		var rec record
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			errs = append(errs, fmt.Errorf("lb: frontend record %s is corrupt: %w", e.Key, err))
			continue
		}
		addr := rec.Bound
		if addr == "" {
			addr = rec.Frontend.Listen
		}
		f, err := b.start(rec.Frontend, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.setBackends(rec.Backends)
		b.fronts[rec.Frontend.Name] = f
	}
	return b, errors.Join(errs...)
}

func (b *Balancer) key(name string) string { return b.prefix + "frontends/" + name }

func normalize(f netsvc.Frontend) (netsvc.Frontend, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("lb: frontend %q: %s: %w", f.Name, fmt.Sprintf(format, args...), netsvc.ErrInvalid)
	}
	if f.Name == "" || strings.ContainsAny(f.Name, "/\x00") {
		return f, bad("name must be non-empty and contain no '/'")
	}
	if _, _, err := net.SplitHostPort(f.Listen); err != nil {
		return f, bad("listen address %q: %v", f.Listen, err)
	}
	switch f.Algorithm {
	case "":
		f.Algorithm = netsvc.RoundRobin
	case netsvc.RoundRobin, netsvc.LeastConn:
	default:
		return f, bad("algorithm %q is not %q or %q", f.Algorithm, netsvc.RoundRobin, netsvc.LeastConn)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&f.ConnectTimeout, 3*time.Second)
	def(&f.IdleTimeout, time.Hour)
	def(&f.DrainTimeout, 30*time.Second)
	def(&f.Health.Interval, 2*time.Second)
	def(&f.Health.Timeout, time.Second)
	if f.Health.Fall <= 0 {
		f.Health.Fall = 2
	}
	if f.Health.Rise <= 0 {
		f.Health.Rise = 2
	}
	if f.Health.HTTPPath != "" && !strings.HasPrefix(f.Health.HTTPPath, "/") {
		return f, bad("health check path %q must start with /", f.Health.HTTPPath)
	}
	return f, nil
}

func checkBackend(frontend string, bk netsvc.Backend) error {
	if _, port, err := net.SplitHostPort(bk.Addr); err != nil || port == "0" || port == "" {
		return fmt.Errorf("lb: frontend %q: backend address %q is not host:port: %w", frontend, bk.Addr, netsvc.ErrInvalid)
	}
	return nil
}

func (b *Balancer) start(cfg netsvc.Frontend, addr string) (*frontend, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lb: frontend %q: listening on %s: %w (free the address or change Listen)", cfg.Name, addr, err)
	}
	f := newFrontend(cfg, ln, b.log, &b.bufs)
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// save persists f; callers hold b.mu.
func (b *Balancer) save(ctx context.Context, f *frontend) error {
	rec := record{Frontend: f.config(), Bound: f.ln.Addr().String(), Backends: f.backendList()}
	v, _ := json.Marshal(rec)
	if _, err := b.st.Put(ctx, b.key(rec.Frontend.Name), v); err != nil {
		return fmt.Errorf("lb: saving frontend %q: %w", rec.Frontend.Name, err)
	}
	return nil
}

func (b *Balancer) get(name string) (*frontend, error) {
	if b.closed {
		return nil, fmt.Errorf("lb: balancer is closed")
	}
	f, ok := b.fronts[name]
	if !ok {
		return nil, fmt.Errorf("lb: frontend %q: %w (create it with EnsureFrontend)", name, netsvc.ErrNotFound)
	}
	return f, nil
}

// EnsureFrontend implements netsvc.LoadBalancer.
func (b *Balancer) EnsureFrontend(ctx context.Context, cfg netsvc.Frontend) error {
	cfg, err := normalize(cfg)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("lb: balancer is closed")
	}
	f, ok := b.fronts[cfg.Name]
	if ok && f.config().Listen == cfg.Listen {
		f.setConfig(cfg)
		return b.save(ctx, f)
	}
	var backends []netsvc.Backend
	if ok {
		// A new address: listen there first so a failure leaves the old
		// frontend running.
		backends = f.backendList()
	}
	nf, err := b.start(cfg, cfg.Listen)
	if err != nil {
		return err
	}
	if ok {
		f.close()
	}
	nf.setBackends(backends)
	b.fronts[cfg.Name] = nf
	return b.save(ctx, nf)
}

// DeleteFrontend implements netsvc.LoadBalancer.
func (b *Balancer) DeleteFrontend(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.get(name)
	if err != nil {
		return err
	}
	if err := b.st.Delete(ctx, b.key(name)); err != nil {
		return fmt.Errorf("lb: deleting frontend %q: %w", name, err)
	}
	delete(b.fronts, name)
	f.close()
	return nil
}

// SetBackends implements netsvc.LoadBalancer.
func (b *Balancer) SetBackends(ctx context.Context, frontend string, bs []netsvc.Backend) error {
	seen := map[string]bool{}
	for _, bk := range bs {
		if err := checkBackend(frontend, bk); err != nil {
			return err
		}
		if seen[bk.Addr] {
			return fmt.Errorf("lb: frontend %q: backend %s listed twice: %w", frontend, bk.Addr, netsvc.ErrInvalid)
		}
		seen[bk.Addr] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.get(frontend)
	if err != nil {
		return err
	}
	f.setBackends(bs)
	return b.save(ctx, f)
}

// AddBackend implements netsvc.LoadBalancer.
func (b *Balancer) AddBackend(ctx context.Context, frontend string, bk netsvc.Backend) error {
	if err := checkBackend(frontend, bk); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.get(frontend)
	if err != nil {
		return err
	}
	list := f.backendList()
	replaced := false
	for i := range list {
		if list[i].Addr == bk.Addr {
			list[i], replaced = bk, true
		}
	}
	if !replaced {
		list = append(list, bk)
	}
	f.setBackends(list)
	return b.save(ctx, f)
}

// RemoveBackend implements netsvc.LoadBalancer.
func (b *Balancer) RemoveBackend(ctx context.Context, frontend, addr string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := b.get(frontend)
	if err != nil {
		return err
	}
	list := f.backendList()
	out := list[:0]
	for _, bk := range list {
		if bk.Addr != addr {
			out = append(out, bk)
		}
	}
	f.setBackends(out)
	return b.save(ctx, f)
}

// Status implements netsvc.LoadBalancer.
func (b *Balancer) Status(_ context.Context, frontend string) (netsvc.FrontendStatus, error) {
	b.mu.Lock()
	f, err := b.get(frontend)
	b.mu.Unlock()
	if err != nil {
		return netsvc.FrontendStatus{}, err
	}
	return f.status(), nil
}

// Frontends lists the names of the running frontends, sorted.
func (b *Balancer) Frontends() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.fronts))
	for n := range b.fronts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close stops every frontend and closes their connections. The store keeps
// the frontends; it is not closed.
func (b *Balancer) Close() error {
	b.mu.Lock()
	b.closed = true
	fronts := b.fronts
	b.fronts = map[string]*frontend{}
	b.mu.Unlock()
	for _, f := range fronts {
		f.close()
	}
	return nil
}
