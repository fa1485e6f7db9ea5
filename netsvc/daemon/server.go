package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/netsvc/daemon/internal/wire"
	"github.com/masonops/mason/netsvc/ipam"
	"github.com/masonops/mason/netsvc/lb"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
)

// Config says what a daemon serves.
type Config struct {
	// StatePath is the bbolt file holding all state. Ignored when Store
	// is set.
	StatePath string
	// Store, when set, is used instead of opening StatePath; Serve does not
	// close it.
	Store store.Store
	// API is the address of the mutual-TLS API ("10.78.0.2:8853").
	API string
	// TLS is the API's server config. It must require and verify client
	// certificates (see ServerTLS, or pki's Authority.ServerConfig).
	TLS *tls.Config
	// DNS is the address DNS is served on over UDP and TCP; empty means no
	// DNS server (the API still manages records).
	DNS string
	// Forward names upstream resolvers for questions outside the zones
	// (see authdns.Options.Forward); empty refuses them.
	Forward []string
	// Zones are made authoritative at start (existing ones keep their
	// records and serials). More can be added through the API.
	Zones []authdns.Zone
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// Ready, when set, is called once everything listens, with the bound
	// addresses.
	Ready func(Addrs)
}

// Addrs are the addresses a running daemon is bound to.
type Addrs struct {
	API string `json:"api"`
	DNS string `json:"dns,omitempty"`
}

// ErrNoClientAuth is returned by Serve for a TLS config that would let
// clients in without a certificate.
var ErrNoClientAuth = errors.New("daemon: the API's TLS config must require and verify client certificates")

func requiresClientCerts(c *tls.Config) bool {
	switch c.ClientAuth {
	case tls.RequireAndVerifyClientCert:
		return true
	case tls.RequireAnyClientCert:
		// Only when something else verifies them (pki's ServerConfig).
		return c.VerifyConnection != nil || c.VerifyPeerCertificate != nil
	}
	return false
}

// Serve runs the daemon until ctx ends, then shuts down gracefully. It
// returns nil after a shutdown asked for by ctx.
func Serve(ctx context.Context, cfg Config) (err error) {
	if cfg.TLS == nil || !requiresClientCerts(cfg.TLS) {
		return ErrNoClientAuth
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := cfg.Store
	if st == nil {
		if cfg.StatePath == "" {
			return fmt.Errorf("daemon: no state: set Config.StatePath (a bbolt file) or Config.Store")
		}
		b, err := bolt.Open(cfg.StatePath, &bolt.Options{LockTimeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("daemon: opening state: %w", err)
		}
		defer b.Close()
		st = b
	}

	dnsSrv, err := authdns.New(st, &authdns.Options{Logger: log, Forward: cfg.Forward})
	if err != nil {
		return fmt.Errorf("daemon: starting DNS: %w", err)
	}
	defer dnsSrv.Close()
	for _, z := range cfg.Zones {
		if err := dnsSrv.AddZone(ctx, z); err != nil {
			return fmt.Errorf("daemon: zone %s: %w", z.Name, err)
		}
	}
	addrs := Addrs{}
	if cfg.DNS != "" {
		if addrs.DNS, err = dnsSrv.Listen(cfg.DNS); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	bal, err := lb.New(ctx, st, &lb.Options{Logger: log})
	if err != nil {
		// Frontends that could listen run; say which could not.
		log.Error("daemon: some load balancer frontends did not start", "err", err)
	}
	if bal == nil {
		return fmt.Errorf("daemon: starting load balancer: %w", err)
	}
	defer bal.Close()
	svc := &service{dns: dnsSrv, ipam: ipam.New(st, nil), lb: bal, log: log}

	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		return fmt.Errorf("daemon: API listen on %s: %w", cfg.API, err)
	}
	addrs.API = ln.Addr().String()
	hs := &http.Server{
		Handler:           svc.routes(),
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	served := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		served <- hs.ServeTLS(ln, "", "")
	}()
	log.Info("daemon: serving", "api", addrs.API, "dns", addrs.DNS)
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		wg.Wait()
		return fmt.Errorf("daemon: API server stopped: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	wg.Wait()
	return nil
}

// service holds the implementations behind the API.
type service struct {
	dns  *authdns.Server
	ipam *ipam.IPAM
	lb   *lb.Balancer
	log  *slog.Logger
}

// handle adapts a typed call to an HTTP handler: decode In, call, encode
// Out or the error.
func handle[In, Out any](s *service, call func(context.Context, In) (Out, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusMethodNotAllowed, wire.Error{Error: "daemon: use POST"})
			return
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, wire.Error{Error: "daemon: bad request body: " + err.Error(), Code: netsvc.Code(netsvc.ErrInvalid)})
			return
		}
		out, err := call(r.Context(), in)
		if err != nil {
			code := netsvc.Code(err)
			status := http.StatusInternalServerError
			switch code {
			case "invalid":
				status = http.StatusBadRequest
			case "not_found", "unknown_zone":
				status = http.StatusNotFound
			case "exhausted", "addr_in_use", "exists":
				status = http.StatusConflict
			}
			if status == http.StatusInternalServerError {
				s.log.Warn("daemon: call failed", "path", r.URL.Path, "err", err)
			}
			writeJSON(w, status, wire.Error{Error: err.Error(), Code: code})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type none struct{}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(wire.DNSZone, handle(s, func(ctx context.Context, z authdns.Zone) (none, error) {
		return none{}, s.dns.AddZone(ctx, z)
	}))
	mux.Handle(wire.DNSUpsert, handle(s, func(ctx context.Context, in wire.Upsert) (none, error) {
		return none{}, s.dns.Upsert(ctx, in.Zone, in.Set)
	}))
	mux.Handle(wire.DNSDelete, handle(s, func(ctx context.Context, in wire.Delete) (none, error) {
		return none{}, s.dns.Delete(ctx, in.Zone, in.Name, in.Type)
	}))
	mux.Handle(wire.DNSRecords, handle(s, func(ctx context.Context, in wire.Name) ([]netsvc.RecordSet, error) {
		return s.dns.Records(ctx, in.Name)
	}))
	mux.Handle(wire.IPAMRange, handle(s, func(ctx context.Context, r netsvc.Range) (none, error) {
		return none{}, s.ipam.AddRange(ctx, r)
	}))
	mux.Handle(wire.IPAMAllocate, handle(s, func(ctx context.Context, r netsvc.Request) (netsvc.Allocation, error) {
		return s.ipam.Allocate(ctx, r)
	}))
	mux.Handle(wire.IPAMRelease, handle(s, func(ctx context.Context, r wire.Release) (none, error) {
		return none{}, s.ipam.Release(ctx, r.Range, r.Owner)
	}))
	mux.Handle(wire.IPAMAllocations, handle(s, func(ctx context.Context, in wire.Name) ([]netsvc.Allocation, error) {
		return s.ipam.Allocations(ctx, in.Name)
	}))
	mux.Handle(wire.LBFrontend, handle(s, func(ctx context.Context, f netsvc.Frontend) (none, error) {
		return none{}, s.lb.EnsureFrontend(ctx, f)
	}))
	mux.Handle(wire.LBFrontendDelete, handle(s, func(ctx context.Context, in wire.Name) (none, error) {
		return none{}, s.lb.DeleteFrontend(ctx, in.Name)
	}))
	mux.Handle(wire.LBBackends, handle(s, func(ctx context.Context, in wire.Backends) (none, error) {
		return none{}, s.lb.SetBackends(ctx, in.Frontend, in.Backends)
	}))
	mux.Handle(wire.LBBackendAdd, handle(s, func(ctx context.Context, in wire.Backend) (none, error) {
		return none{}, s.lb.AddBackend(ctx, in.Frontend, in.Backend)
	}))
	mux.Handle(wire.LBBackendRemove, handle(s, func(ctx context.Context, in wire.Backend) (none, error) {
		return none{}, s.lb.RemoveBackend(ctx, in.Frontend, in.Backend.Addr)
	}))
	mux.Handle(wire.LBStatus, handle(s, func(ctx context.Context, in wire.Name) (netsvc.FrontendStatus, error) {
		return s.lb.Status(ctx, in.Name)
	}))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, wire.Error{Error: "daemon: no such call " + r.URL.Path})
	}))
	return mux
}

// writeReady writes addrs as JSON to path atomically (for Main's
// -ready-file).
func writeReady(path string, addrs Addrs) error {
	b, _ := json.Marshal(addrs)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
