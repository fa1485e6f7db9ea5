// Package engine implements the store driver once — revisions,
// transactions, leases and watches — over a small persistence backend, so
// that the in-memory and bbolt stores differ only in how they keep bytes.
package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/masonops/mason/store"
)

// Record is a stored value with its metadata.
type Record struct {
	Value []byte
	Rev   int64
	Lease store.LeaseID
}

// Write is one change handed to a backend's Commit.
type Write struct {
	Key    string
	Delete bool
	Rec    Record
}

// Backend persists records. The engine serializes every Commit and never
// calls Commit concurrently with itself; reads may run concurrently.
type Backend interface {
	Get(key string) (Record, bool, error)
	// List returns the entries under prefix, sorted by key.
	List(prefix string) ([]store.Entry, error)
	// Commit applies writes and records rev as the current revision,
	// atomically and durably.
	Commit(rev int64, writes []Write) error
	// Rev is the last committed revision when the backend was opened.
	Rev() int64
	Close() error
}

// historySize bounds the events kept for Watch replays.
const historySize = 8192

// reapEvery is how often expired leases are looked for.
const reapEvery = 20 * time.Millisecond

// Engine implements store.Driver over a Backend; store.New makes it a
// store.Store.
type Engine struct {
	b Backend

	mu     sync.RWMutex // writers hold it exclusively, readers shared
	rev    int64
	closed bool

	leaseMu   sync.Mutex
	leases    map[store.LeaseID]*lease
	nextLease store.LeaseID

	hub hub
	// Scratch space of applyLocked, reused under mu (nothing keeps it:
	// backends and the hub copy the writes they keep).
	olds   []oldRecord
	writes []Write

	stop chan struct{}
	done chan struct{}
}

type lease struct {
	ttl    time.Duration
	expiry time.Time
	keys   map[string]struct{}
}

// New starts an engine on b. Keys written with a lease by an earlier process
// are deleted: that process, and so its leases, are gone.
func New(b Backend) (*Engine, error) {
	e := &Engine{
		b:         b,
		rev:       b.Rev(),
		leases:    map[store.LeaseID]*lease{},
		nextLease: store.LeaseID(time.Now().UnixNano() & 0x7fffffffffff),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	e.hub.init(e.rev)
	all, err := b.List("")
	if err != nil {
		return nil, err
	}
	var stale []Write
	for _, ent := range all {
		if ent.Lease != 0 {
			stale = append(stale, Write{Key: ent.Key, Delete: true})
		}
	}
	if len(stale) > 0 {
		e.rev++
		if err := b.Commit(e.rev, stale); err != nil {
			return nil, fmt.Errorf("store: deleting keys of expired leases: %w", err)
		}
		e.hub.init(e.rev)
	}
	go e.reap()
	return e, nil
}

// Get implements store.Driver.
func (e *Engine) Get(ctx context.Context, key string) (store.Entry, error) {
	if err := ctx.Err(); err != nil {
		return store.Entry{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return store.Entry{}, store.ErrClosed
	}
	rec, ok, err := e.b.Get(key)
	if err != nil {
		return store.Entry{}, err
	}
	if !ok {
		return store.Entry{}, fmt.Errorf("%w: %q", store.ErrNotFound, key)
	}
	return store.Entry{Key: key, Value: rec.Value, Revision: rec.Rev, Lease: rec.Lease}, nil
}

// List implements store.Driver.
func (e *Engine) List(ctx context.Context, prefix string) ([]store.Entry, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, 0, store.ErrClosed
	}
	ents, err := e.b.List(prefix)
	return ents, e.rev, err
}

// Txn implements store.Driver: the ops are checked by store.Portable.
func (e *Engine) Txn(ctx context.Context, ops []store.Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, store.ErrClosed
	}
	return e.applyLocked(ops)
}

func (e *Engine) applyLocked(ops []store.Op) (int64, error) {
	// With no lease granted (e.mu is held: none can be), no stored key
	// has one that a put would have to detach: plain puts need no read of
	// the old record.
	e.leaseMu.Lock()
	noLeases := len(e.leases) == 0
	e.leaseMu.Unlock()
	// olds is needed only when some op reads its key's old record.
	var olds []oldRecord
	defer func() {
		if olds != nil {
			e.olds = keep(olds)
		}
	}()
	leased := false // some op writes with a lease
	values := 0     // bytes of the values put
	for i := range ops {
		op := &ops[i] // not a copy: an Op is large
		if op.Kind == store.OpPut {
			values += len(op.Value)
			leased = leased || op.Lease != 0
			if noLeases && !op.Check {
				continue
			}
		}
		if olds == nil {
			olds = grow(e.olds, len(ops))
		}
		rec, ok, err := e.b.Get(op.Key)
		if err != nil {
			return 0, err
		}
		olds[i] = oldRecord{rec.Lease, ok}
		if op.Check && rec.Rev != op.Rev {
			return 0, &store.ConflictError{Key: op.Key, Want: op.Rev, Have: rec.Rev}
		}
	}
	if leased {
		e.leaseMu.Lock()
		for _, op := range ops {
			if op.Kind == store.OpPut && op.Lease != 0 {
				if _, ok := e.leases[op.Lease]; !ok {
					e.leaseMu.Unlock()
					return 0, fmt.Errorf("%w: %d (writing %q)", store.ErrLeaseNotFound, op.Lease, op.Key)
				}
			}
		}
		e.leaseMu.Unlock()
	}

	rev := e.rev + 1
	writes := grow(e.writes, len(ops))[:0]
	defer func() { e.writes = keep(writes) }()
	copies := slab{left: values}
	for i := range ops {
		switch op := &ops[i]; op.Kind {
		case store.OpPut:
			writes = append(writes, Write{Key: op.Key, Rec: Record{Value: copies.copy(op.Value), Rev: rev, Lease: op.Lease}})
		case store.OpDelete:
			if olds[i].exists {
				writes = append(writes, Write{Key: op.Key, Delete: true})
			}
		}
	}
	if len(writes) == 0 {
		return e.rev, nil
	}
	if err := e.b.Commit(rev, writes); err != nil {
		return 0, err
	}
	e.rev = rev

	if olds != nil || leased {
		e.leaseMu.Lock()
		for i, op := range ops {
			if olds != nil && op.Kind != store.OpCheck {
				if old := olds[i].lease; olds[i].exists && old != 0 {
					if l := e.leases[old]; l != nil {
						delete(l.keys, op.Key)
					}
				}
			}
			if op.Kind == store.OpPut && op.Lease != 0 {
				e.leases[op.Lease].keys[op.Key] = struct{}{}
			}
		}
		e.leaseMu.Unlock()
	}

	e.hub.publish(rev, writes)
	return rev, nil
}

// Grant implements store.Driver.
func (e *Engine) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0, store.ErrClosed
	}
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	e.nextLease++
	id := e.nextLease
	e.leases[id] = &lease{ttl: ttl, expiry: time.Now().Add(ttl), keys: map[string]struct{}{}}
	return id, nil
}

// KeepAlive implements store.Driver.
func (e *Engine) KeepAlive(ctx context.Context, id store.LeaseID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return store.ErrClosed
	}
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	l, ok := e.leases[id]
	if !ok || time.Now().After(l.expiry) {
		return fmt.Errorf("%w: %d", store.ErrLeaseNotFound, id)
	}
	l.expiry = time.Now().Add(l.ttl)
	return nil
}

// Revoke implements store.Driver.
func (e *Engine) Revoke(ctx context.Context, id store.LeaseID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return store.ErrClosed
	}
	if !e.endLeaseLocked(id) {
		return fmt.Errorf("%w: %d", store.ErrLeaseNotFound, id)
	}
	return nil
}

// endLeaseLocked removes a lease and deletes its keys. e.mu must be held.
func (e *Engine) endLeaseLocked(id store.LeaseID) bool {
	e.leaseMu.Lock()
	l, ok := e.leases[id]
	delete(e.leases, id)
	e.leaseMu.Unlock()
	if !ok {
		return false
	}
	var ops []store.Op
	for k := range l.keys {
		ops = append(ops, store.DeleteOp(k))
	}
	if len(ops) > 0 {
		// The keys were attached to this lease under e.mu, so they exist;
		// a failure here is a backend failure, and the lease is gone anyway.
		_, _ = e.applyLocked(ops)
	}
	return true
}

func (e *Engine) reap() {
	defer close(e.done)
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.leaseMu.Lock()
			var expired []store.LeaseID
			for id, l := range e.leases {
				if now.After(l.expiry) {
					expired = append(expired, id)
				}
			}
			e.leaseMu.Unlock()
			if len(expired) == 0 {
				continue
			}
			e.mu.Lock()
			if !e.closed {
				for _, id := range expired {
					e.endLeaseLocked(id)
				}
			}
			e.mu.Unlock()
		}
	}
}

// Watch implements store.Driver.
func (e *Engine) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan store.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, store.ErrClosed
	}
	return e.hub.subscribe(ctx, prefix, fromRev)
}

// Close implements store.Driver.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	<-e.done
	e.hub.close()
	return e.b.Close()
}

// oldRecord is what a transaction needs to know of a key's old record.
type oldRecord struct {
	lease  store.LeaseID
	exists bool
}

// maxScratch bounds the scratch space an engine keeps between transactions.
const maxScratch = 16 << 10

// keep returns s emptied and cleared for reuse, or nil if it is too big to
// keep around.
func keep[T any](s []T) []T {
	if cap(s) > maxScratch {
		return nil
	}
	clear(s)
	return s[:0]
}

// grow returns s resized to n elements, reallocated only when too small,
// with room to spare (as append grows), so that transactions of slowly
// growing sizes do not reallocate each time.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, max(n, 2*cap(s)))
	}
	return s[:n]
}

// slabSize bounds the block a transaction's values are copied into: one
// allocation for many values, and a block stays alive while any value in
// it does (keys are overwritten one by one), so at most this much is kept
// for one value that outlives its neighbours.
const slabSize = 8 << 10

// slab copies a transaction's values into shared blocks of at most
// slabSize bytes (values larger than a block have their own). Each copy's
// capacity is its length, so appending to one never writes into another.
type slab struct {
	buf  []byte
	left int // bytes of the values still to copy
}

func (s *slab) copy(v []byte) []byte {
	n := len(v)
	s.left -= n
	if n == 0 {
		return []byte{} // a put of nil stores an empty, non-nil value
	}
	if n > cap(s.buf)-len(s.buf) {
		if n >= slabSize/2 {
			return append([]byte(nil), v...)
		}
		s.buf = make([]byte, 0, min(n+s.left, slabSize))
	}
	at := len(s.buf)
	s.buf = append(s.buf, v...)
	return s.buf[at:len(s.buf):len(s.buf)]
}
