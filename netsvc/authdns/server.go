package authdns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
)

// DefaultPrefix is where the server keeps its zones and records in the store.
const DefaultPrefix = "netsvc/dns/"

// Options tune New. The zero value is usable.
type Options struct {
	// Prefix is the store key prefix; empty means DefaultPrefix. Servers
	// sharing a store and a prefix serve the same zones.
	Prefix string
	// Logger receives serving errors; nil discards them.
	Logger *slog.Logger
	// Forward names upstream resolvers (host:port) that questions outside
	// the server's zones are relayed to, when the client asks for
	// recursion. Empty (the default) refuses such questions.
	Forward []string
	// ForwardClients are the clients allowed to use Forward; empty means
	// loopback only. Everyone else is REFUSED as before.
	ForwardClients []netip.Prefix
}

// Server is an authoritative DNS server whose zones live in a store. It
// implements netsvc.DNS and dns.Handler. Create it with New, start serving
// with Listen, stop with Close.
type Server struct {
	st     store.Store
	prefix string
	log    *slog.Logger
	fwd    *forwarder // nil: no forwarding

	zones atomic.Pointer[map[string]*zoneData]
	// reload serializes snapshot rebuilds so that an older read never
	// replaces a newer snapshot.
	reload sync.Mutex

	mu      sync.Mutex
	servers []*dns.Server
	groups  []*udpGroup
	addr    string
	closed  bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ netsvc.DNS = (*Server)(nil)

// New loads the zones kept in st and follows later changes made by other
// writers to the same store. It does not listen yet; see Listen.
func New(st store.Store, opts *Options) (*Server, error) {
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
	fwd, err := newForwarder(o)
	if err != nil {
		return nil, err
	}
	s := &Server{st: st, prefix: o.Prefix, log: o.Logger, fwd: fwd}
	empty := map[string]*zoneData{}
	s.zones.Store(&empty)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	rev, err := s.loadAll(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s.wg.Add(1)
	go s.follow(ctx, rev+1)
	return s, nil
}

func (s *Server) zoneKey(zone string) string  { return s.prefix + "zones/" + zone }
func (s *Server) rrPrefix(zone string) string { return s.prefix + "rr/" + zone + "/" }
func (s *Server) rrKey(zone, name string, t netsvc.RRType) string {
	return s.rrPrefix(zone) + name + "/" + string(t)
}

// loadAll rebuilds every zone from the store and returns the revision read.
func (s *Server) loadAll(ctx context.Context) (int64, error) {
	s.reload.Lock()
	defer s.reload.Unlock()
	ents, rev, err := s.st.List(ctx, s.prefix)
	if err != nil {
		return 0, fmt.Errorf("authdns: loading zones from store prefix %s: %w", s.prefix, err)
	}
	recs := map[string]zoneRecord{}
	sets := map[string][]store.Entry{}
	for _, e := range ents {
		rest := strings.TrimPrefix(e.Key, s.prefix)
		switch {
		case strings.HasPrefix(rest, "zones/"):
			var zr zoneRecord
			if err := json.Unmarshal(e.Value, &zr); err != nil {
				return 0, fmt.Errorf("authdns: zone record %s is corrupt: %w", e.Key, err)
			}
			recs[zr.Name] = zr
		case strings.HasPrefix(rest, "rr/"):
			zone, _, _ := strings.Cut(strings.TrimPrefix(rest, "rr/"), "/")
			sets[zone] = append(sets[zone], e)
		}
	}
	m := map[string]*zoneData{}
	for name, zr := range recs {
		zd, err := buildZone(zr, sets[name], nil)
		if err != nil {
			return 0, err
		}
		zd.rev = rev
		m[name] = zd
	}
	s.zones.Store(&m)
	return rev, nil
}

// loadZone rebuilds one zone from the store.
func (s *Server) loadZone(ctx context.Context, zone string) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	// One Txn-consistent read would be nicer; reading the records first
	// and the zone record second is safe because every write bumps the
	// zone record, so a later rebuild always follows a racing write.
	ents, rev, err := s.st.List(ctx, s.rrPrefix(zone))
	if err != nil {
		return fmt.Errorf("authdns: loading zone %s: %w", zone, err)
	}
	old := *s.zones.Load()
	m := make(map[string]*zoneData, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	ze, err := s.st.Get(ctx, s.zoneKey(zone))
	switch {
	case errors.Is(err, store.ErrNotFound):
		delete(m, zone)
	case err != nil:
		return fmt.Errorf("authdns: loading zone %s: %w", zone, err)
	default:
		var zr zoneRecord
		if err := json.Unmarshal(ze.Value, &zr); err != nil {
			return fmt.Errorf("authdns: zone record %s is corrupt: %w", ze.Key, err)
		}
		zd, err := buildZone(zr, ents, old[zone])
		if err != nil {
			return err
		}
		zd.rev = rev
		m[zone] = zd
	}
	s.zones.Store(&m)
	return nil
}

// follow applies changes other writers make to the store.
func (s *Server) follow(ctx context.Context, from int64) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		ch, err := s.st.Watch(ctx, s.prefix, from)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("authdns: watching the store failed; reloading", "err", err)
			if rev, err := s.loadAll(ctx); err == nil {
				from = rev + 1
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range ch {
			from = ev.Revision + 1
			rest := strings.TrimPrefix(ev.Key, s.prefix)
			var zone string
			if z, ok := strings.CutPrefix(rest, "zones/"); ok {
				zone = z
			} else if r, ok := strings.CutPrefix(rest, "rr/"); ok {
				zone, _, _ = strings.Cut(r, "/")
			} else {
				continue
			}
			if zd := (*s.zones.Load())[zone]; zd != nil && ev.Revision <= zd.rev {
				continue // this server's own write, already loaded
			}
			if err := s.loadZone(ctx, zone); err != nil && ctx.Err() == nil {
				s.log.Warn("authdns: reloading zone failed", "zone", zone, "err", err)
			}
		}
		if ctx.Err() == nil {
			// The store closed the watch (closed store): stop following.
			return
		}
	}
}

// AddZone makes the server authoritative for z. Adding a zone that exists
// keeps its records and serial and updates its settings.
func (s *Server) AddZone(ctx context.Context, z Zone) error {
	z, err := normalized(z)
	if err != nil {
		return err
	}
	key := s.zoneKey(z.Name)
	for attempt := 0; ; attempt++ {
		rec := zoneRecord{Zone: z, Serial: 1}
		var rev int64
		e, err := s.st.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("authdns: adding zone %s: %w", z.Name, err)
		default:
			var old zoneRecord
			if err := json.Unmarshal(e.Value, &old); err != nil {
				return fmt.Errorf("authdns: zone record %s is corrupt: %w", key, err)
			}
			rev = e.Revision
			rec.Serial = old.Serial
			if equalZone(old.Zone, z) {
				return s.loadZone(ctx, z.Name)
			}
			rec.Serial = nextSerial(old.Serial)
		}
		b, _ := json.Marshal(rec)
		if _, err := s.st.CompareAndSwap(ctx, key, rev, b); err != nil {
			if errors.Is(err, store.ErrConflict) && attempt < 100 {
				continue
			}
			return fmt.Errorf("authdns: adding zone %s: %w", z.Name, err)
		}
		return s.loadZone(ctx, z.Name)
	}
}

func equalZone(a, b Zone) bool {
	if a.Name != b.Name || a.Admin != b.Admin || a.TTL != b.TTL || a.NegativeTTL != b.NegativeTTL || len(a.NS) != len(b.NS) {
		return false
	}
	for i := range a.NS {
		if a.NS[i] != b.NS[i] {
			return false
		}
	}
	return true
}

func nextSerial(s uint32) uint32 {
	s++
	if s == 0 {
		s = 1
	}
	return s
}

// Serial returns the zone's current SOA serial as served.
func (s *Server) Serial(zone string) (uint32, error) {
	zd := (*s.zones.Load())[netsvc.Fqdn(".", zone)]
	if zd == nil {
		return 0, fmt.Errorf("authdns: zone %s: %w", zone, netsvc.ErrUnknownZone)
	}
	return zd.rec.Serial, nil
}

// change runs one write to zone: mutate receives the zone and the record
// sets at the affected name and returns the ops to apply, and the write
// commits together with a serial bump under compare-and-swap on the zone
// record, retried when another writer got there first.
func (s *Server) change(ctx context.Context, zone, name string, mutate func(z zoneRecord, atName map[netsvc.RRType]store.Entry) ([]store.Op, error)) error {
	zone = netsvc.Fqdn(".", zone)
	key := s.zoneKey(zone)
	for attempt := 0; ; attempt++ {
		ze, err := s.st.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("authdns: zone %s: %w (add it with AddZone or the daemon's zone list)", zone, netsvc.ErrUnknownZone)
		}
		if err != nil {
			return fmt.Errorf("authdns: reading zone %s: %w", zone, err)
		}
		var zr zoneRecord
		if err := json.Unmarshal(ze.Value, &zr); err != nil {
			return fmt.Errorf("authdns: zone record %s is corrupt: %w", key, err)
		}
		atName := map[netsvc.RRType]store.Entry{}
		if name != "" {
			ents, _, err := s.st.List(ctx, s.rrPrefix(zone)+name+"/")
			if err != nil {
				return fmt.Errorf("authdns: reading %s: %w", name, err)
			}
			for _, e := range ents {
				atName[netsvc.RRType(e.Key[strings.LastIndexByte(e.Key, '/')+1:])] = e
			}
		}
		ops, err := mutate(zr, atName)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		zr.Serial = nextSerial(zr.Serial)
		b, _ := json.Marshal(zr)
		ops = append(ops, store.PutOp(key, b).IfRevision(ze.Revision))
		if _, err := s.st.Txn(ctx, ops...); err != nil {
			if errors.Is(err, store.ErrConflict) && attempt < 1000 {
				continue
			}
			return fmt.Errorf("authdns: writing zone %s: %w", zone, err)
		}
		return s.loadZone(ctx, zone)
	}
}

// Upsert implements netsvc.DNS.
func (s *Server) Upsert(ctx context.Context, zone string, rs netsvc.RecordSet) error {
	zone = netsvc.Fqdn(".", zone)
	name := netsvc.Fqdn(zone, rs.Name)
	return s.change(ctx, zone, name, func(zr zoneRecord, atName map[netsvc.RRType]store.Entry) ([]store.Op, error) {
		norm, _, err := parseSet(zr.Zone, rs)
		if err != nil {
			return nil, err
		}
		for t := range atName {
			if (rs.Type == netsvc.TypeCNAME) != (t == netsvc.TypeCNAME) {
				return nil, fmt.Errorf("authdns: %s already has %s records and a CNAME cannot share its name with other data: delete one first: %w", name, t, netsvc.ErrInvalid)
			}
		}
		b, _ := json.Marshal(norm)
		if old, ok := atName[rs.Type]; ok && string(old.Value) == string(b) {
			return nil, nil // unchanged: no serial bump
		}
		return []store.Op{store.PutOp(s.rrKey(zone, name, rs.Type), b)}, nil
	})
}

// Delete implements netsvc.DNS.
func (s *Server) Delete(ctx context.Context, zone, name string, typ netsvc.RRType) error {
	zone = netsvc.Fqdn(".", zone)
	fq := netsvc.Fqdn(zone, name)
	if strings.Contains(fq, "/") {
		return fmt.Errorf("authdns: name %q: %w", name, netsvc.ErrInvalid)
	}
	return s.change(ctx, zone, fq, func(_ zoneRecord, atName map[netsvc.RRType]store.Entry) ([]store.Op, error) {
		e, ok := atName[typ]
		if !ok {
			return nil, nil
		}
		return []store.Op{store.DeleteOp(e.Key).IfRevision(e.Revision)}, nil
	})
}

// Records implements netsvc.DNS.
func (s *Server) Records(ctx context.Context, zone string) ([]netsvc.RecordSet, error) {
	zone = netsvc.Fqdn(".", zone)
	if _, err := s.st.Get(ctx, s.zoneKey(zone)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("authdns: zone %s: %w", zone, netsvc.ErrUnknownZone)
		}
		return nil, fmt.Errorf("authdns: reading zone %s: %w", zone, err)
	}
	ents, _, err := s.st.List(ctx, s.rrPrefix(zone))
	if err != nil {
		return nil, fmt.Errorf("authdns: listing zone %s: %w", zone, err)
	}
	out := make([]netsvc.RecordSet, 0, len(ents))
	for _, e := range ents {
		rs, err := decodeSet(e.Value)
		if err != nil {
			return nil, fmt.Errorf("authdns: record set %s is corrupt: %w", e.Key, err)
		}
		out = append(out, rs)
	}
	sortSets(out)
	return out, nil
}

// Listen serves DNS on addr ("127.0.0.1:5353"; port 0 picks a port free for
// both UDP and TCP) until Close. It returns the address bound.
func (s *Server) Listen(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", fmt.Errorf("authdns: listen on %s: server is closed", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("authdns: listen address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	fast := ip != nil && !ip.IsUnspecified()
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		var (
			group   *udpGroup
			pc      net.PacketConn
			udpPort int
		)
		if fast {
			if group, err = listenUDPGroup(addr); err != nil {
				return "", err
			}
			udpPort = group.port()
		} else {
			if pc, err = net.ListenPacket("udp", addr); err != nil {
				return "", fmt.Errorf("authdns: listening on udp %s: %w", addr, err)
			}
			udpPort = pc.LocalAddr().(*net.UDPAddr).Port
		}
		bound := net.JoinHostPort(host, fmt.Sprint(udpPort))
		l, err := net.Listen("tcp", bound)
		if err != nil {
			if group != nil {
				group.close()
			} else {
				pc.Close()
			}
			lastErr = err
			if port != "0" {
				break
			}
			continue
		}
		servers := []*dns.Server{{Listener: l, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}}
		if group != nil {
			group.serve(s)
			s.groups = append(s.groups, group)
		} else {
			servers = append(servers, &dns.Server{PacketConn: pc, Handler: s, UDPSize: 65535})
		}
		for _, srv := range servers {
			// Wait until the server runs, so that Close can always stop it.
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			s.servers = append(s.servers, srv)
			s.wg.Add(1)
			go func(srv *dns.Server) {
				defer s.wg.Done()
				if err := srv.ActivateAndServe(); err != nil {
					s.log.Warn("authdns: server stopped", "addr", bound, "err", err)
				}
			}(srv)
			<-started
		}
		s.addr = bound
		return bound, nil
	}
	return "", fmt.Errorf("authdns: listening on tcp %s: %w", addr, lastErr)
}

// Addr returns the address the last Listen bound, or "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops serving and following the store, and waits for both. It does
// not close the store.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	servers, groups := s.servers, s.groups
	s.servers, s.groups = nil, nil
	s.mu.Unlock()
	for _, g := range groups {
		g.close()
	}
	if s.fwd != nil {
		_ = s.fwd.inflight.Wait() // the UDP path's forwarded queries
	}
	for _, srv := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.ShutdownContext(ctx)
		cancel()
	}
	s.cancel()
	s.wg.Wait()
	return nil
}
