package lb

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masonops/mason/netsvc"
)

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
