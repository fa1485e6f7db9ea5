package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masonops/mason/netsvc"
)

// frontend is one listening address and its backends.
type frontend struct {
	ln   net.Listener
	log  *slog.Logger
	bufs *bufPool // the Balancer's

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

func newFrontend(cfg netsvc.Frontend, ln net.Listener, log *slog.Logger, bufs *bufPool) *frontend {
	ctx, cancel := context.WithCancel(context.Background())
	f := &frontend{ln: ln, log: log.With("frontend", cfg.Name), bufs: bufs, ctx: ctx, cancel: cancel, cfg: cfg}
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
		proxy(client, server, cfg.IdleTimeout, f.bufs)
		b.mu.Lock()
		delete(b.conns, server)
		b.mu.Unlock()
		f.release(b, client)
		return
	}
}
