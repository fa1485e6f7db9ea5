package lb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masonops/mason/netsvc"
)

// frontend is one listening address and its backends.
type frontend struct {
	ln  net.Listener
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, connections, health checks

	mu       sync.Mutex
	cfg      netsvc.Frontend
	backends []*backend // in rotation, in the order given
	draining []*backend // removed, still carrying connections

	rotation atomic.Pointer[[]*backend] // lock-free copy of backends for picking
	next     atomic.Uint64              // round-robin cursor
}

// backend is one server and its live state. Its address never changes
// (it is the backend's identity); its name may, under mu.
type backend struct {
	Addr    string
	healthy atomic.Bool
	active  atomic.Int64
	total   atomic.Uint64

	mu      sync.Mutex
	name    string
	lastErr string
	ok, bad int // consecutive check results
	conns   map[net.Conn]struct{}
	removed bool
	stop    context.CancelFunc // stops its health checks
	drained chan struct{}      // closed when removed and idle
}

func newFrontend(cfg netsvc.Frontend, ln net.Listener, log *slog.Logger) *frontend {
	ctx, cancel := context.WithCancel(context.Background())
	f := &frontend{ln: ln, log: log.With("frontend", cfg.Name), ctx: ctx, cancel: cancel, cfg: cfg}
	f.rotation.Store(&[]*backend{})
	return f
}

func (f *frontend) config() netsvc.Frontend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *frontend) setConfig(cfg netsvc.Frontend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
}

func (f *frontend) backendList() []netsvc.Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]netsvc.Backend, len(f.backends))
	for i, b := range f.backends {
		out[i] = b.spec()
	}
	return out
}

// setBackends makes bs the rotation: backends already present keep their
// state, new ones start healthy with their checks, missing ones drain.
func (f *frontend) setBackends(bs []netsvc.Backend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := map[string]*backend{}
	for _, b := range f.backends {
		old[b.Addr] = b
	}
	next := make([]*backend, 0, len(bs))
	for _, nb := range bs {
		if b, ok := old[nb.Addr]; ok {
			b.setName(nb.Name)
			next = append(next, b)
			delete(old, nb.Addr)
			continue
		}
		// A backend re-added while draining comes back with its state.
		var b *backend
		for i, d := range f.draining {
			if d.Addr == nb.Addr {
				b = d
				f.draining = append(f.draining[:i], f.draining[i+1:]...)
				b.mu.Lock()
				b.removed = false
				b.drained = nil
				b.mu.Unlock()
				break
			}
		}
		if b == nil {
			b = &backend{Addr: nb.Addr, conns: map[net.Conn]struct{}{}}
			b.healthy.Store(true)
		}
		b.setName(nb.Name)
		next = append(next, b)
		f.startChecks(b)
	}
	for _, b := range old {
		f.drain(b)
	}
	f.backends = next
	rot := append([]*backend(nil), next...)
	f.rotation.Store(&rot)
}

// drain takes b out of rotation; callers hold f.mu.
func (f *frontend) drain(b *backend) {
	b.mu.Lock()
	b.removed = true
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
	idle := len(b.conns) == 0
	b.drained = make(chan struct{})
	drained := b.drained
	if idle {
		close(drained)
	}
	b.mu.Unlock()
	if idle {
		return
	}
	f.draining = append(f.draining, b)
	timeout := f.cfg.DrainTimeout
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-drained:
		case <-f.ctx.Done():
		case <-t.C:
			b.mu.Lock()
			still := b.drained == drained
			b.mu.Unlock()
			if still {
				f.log.Info("lb: drain timeout: closing connections", "backend", b.Addr)
				b.closeConns()
			}
		}
	}()
}

func (b *backend) spec() netsvc.Backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	return netsvc.Backend{Addr: b.Addr, Name: b.name}
}

func (b *backend) setName(name string) {
	b.mu.Lock()
	b.name = name
	b.mu.Unlock()
}

func (b *backend) closeConns() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
}

// release forgets conn; a removed backend whose last connection ended
// leaves the draining list.
func (f *frontend) release(b *backend, conn net.Conn) {
	b.mu.Lock()
	delete(b.conns, conn)
	done := b.removed && len(b.conns) == 0 && b.drained != nil
	if done {
		select {
		case <-b.drained:
			done = false
		default:
			close(b.drained)
		}
	}
	b.mu.Unlock()
	b.active.Add(-1)
	if done {
		f.mu.Lock()
		for i, d := range f.draining {
			if d == b {
				f.draining = append(f.draining[:i], f.draining[i+1:]...)
				break
			}
		}
		f.mu.Unlock()
	}
}

func (f *frontend) status() netsvc.FrontendStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := netsvc.FrontendStatus{Name: f.cfg.Name, Listen: f.ln.Addr().String()}
	add := func(b *backend, draining bool) {
		b.mu.Lock()
		lastErr := b.lastErr
		b.mu.Unlock()
		st.Backends = append(st.Backends, netsvc.BackendStatus{
			Backend:   b.spec(),
			Healthy:   b.healthy.Load(),
			Draining:  draining,
			Active:    b.active.Load(),
			Total:     b.total.Load(),
			LastError: lastErr,
		})
	}
	for _, b := range f.backends {
		add(b, false)
	}
	for _, b := range f.draining {
		add(b, true)
	}
	return st
}

func (f *frontend) close() {
	f.cancel()
	f.ln.Close()
	f.mu.Lock()
	all := append(append([]*backend(nil), f.backends...), f.draining...)
	f.mu.Unlock()
	for _, b := range all {
		b.closeConns()
	}
	f.wg.Wait()
}

// serve accepts until the listener closes; start it with f.wg counted.
func (f *frontend) serve() {
	defer f.wg.Done()
	delay := 5 * time.Millisecond
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if f.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep going.
			f.log.Warn("lb: accept failed", "err", err)
			select {
			case <-time.After(delay):
			case <-f.ctx.Done():
				return
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		f.wg.Add(1)
		go f.handle(c)
	}
}

// pick chooses a healthy backend not in tried, or nil. Round-robin takes
// the healthy backends in turn (a dead one does not hand its turn to its
// neighbour); least-connections takes the one with the fewest open
// connections, ties broken in round-robin order.
func (f *frontend) pick(alg netsvc.Algorithm, tried []*backend) *backend {
	rot := *f.rotation.Load()
	usable := func(b *backend) bool { return b.healthy.Load() && !contains(tried, b) }
	m := 0
	for _, b := range rot {
		if usable(b) {
			m++
		}
	}
	if m == 0 {
		return nil
	}
	k := int(f.next.Add(1) % uint64(m))
	start := 0
	for i, b := range rot {
		if usable(b) {
			if k == 0 {
				start = i
				break
			}
			k--
		}
	}
	best := rot[start]
	if alg != netsvc.LeastConn {
		return best
	}
	for i := 1; i < len(rot); i++ {
		b := rot[(start+i)%len(rot)]
		if usable(b) && b.active.Load() < best.active.Load() {
			best = b
		}
	}
	return best
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

func (f *frontend) handle(client net.Conn) {
	defer f.wg.Done()
	cfg := f.config()
	var tried []*backend
	for {
		b := f.pick(cfg.Algorithm, tried)
		if b == nil {
			f.log.Warn("lb: no healthy backend; closing connection", "client", client.RemoteAddr())
			client.Close()
			return
		}
		tried = append(tried, b)
		b.active.Add(1)
		d := net.Dialer{Timeout: cfg.ConnectTimeout}
		server, err := d.DialContext(f.ctx, "tcp", b.Addr)
		if err != nil {
			b.active.Add(-1)
			f.result(b, err, cfg.Health)
			continue
		}
		b.mu.Lock()
		if b.removed && b.drained != nil {
			// Removed while we dialed: no new connection for it.
			b.mu.Unlock()
			b.active.Add(-1)
			server.Close()
			continue
		}
		b.conns[client] = struct{}{}
		b.conns[server] = struct{}{}
		b.mu.Unlock()
		b.total.Add(1)
		proxy(client, server, cfg.IdleTimeout)
		b.mu.Lock()
		delete(b.conns, server)
		b.mu.Unlock()
		f.release(b, client)
		return
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// proxy copies both ways until both directions ended, then closes both.
func proxy(client, server net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		pipe(server, client, idle, &last)
		close(done)
	}()
	pipe(client, server, idle, &last)
	<-done
	client.Close()
	server.Close()
}

// pipe copies src to dst. On EOF it half-closes dst; on any other end it
// closes both so the other direction stops too. The idle timeout counts
// traffic in both directions (last).
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var deadline time.Time
	for {
		now := time.Now()
		if deadline.Sub(now) < idle/2 {
			deadline = now.Add(idle)
			src.SetReadDeadline(deadline)
		}
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				deadline = time.Time{} // the other direction is busy: keep waiting
				continue
			}
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
					return
				}
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// startChecks runs b's health checks until it is removed or the frontend
// closes; callers hold f.mu.
func (f *frontend) startChecks(b *backend) {
	ctx, cancel := context.WithCancel(f.ctx)
	b.mu.Lock()
	if b.stop != nil {
		b.stop()
	}
	b.stop = cancel
	b.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			hc := f.config().Health
			select {
			case <-ctx.Done():
				return
			case <-time.After(hc.Interval):
			}
			err := check(ctx, b.Addr, hc)
			if ctx.Err() != nil {
				return
			}
			f.result(b, err, hc)
		}
	}()
}

// result applies one check (or dial) outcome to b's health.
func (f *frontend) result(b *backend, err error, hc netsvc.HealthCheck) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.bad = 0
		b.ok++
		if !b.healthy.Load() && b.ok >= hc.Rise {
			b.healthy.Store(true)
			b.lastErr = ""
			f.log.Info("lb: backend up", "backend", b.Addr)
		}
		return
	}
	b.ok = 0
	b.bad++
	b.lastErr = err.Error()
	if b.healthy.Load() && b.bad >= hc.Fall {
		b.healthy.Store(false)
		f.log.Warn("lb: backend down", "backend", b.Addr, "err", err)
	}
}

// check runs one health check of addr.
func check(ctx context.Context, addr string, hc netsvc.HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	if hc.HTTPPath == "" {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.HTTPPath, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "health check answered HTTP " + http.StatusText(e.code) }
