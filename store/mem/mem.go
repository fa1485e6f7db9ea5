// Package mem is an in-memory store: every guarantee of the store contract
// except surviving the process. Use it in tests and for throwaway runs.
package mem

import (
	"sort"
	"strings"
	"sync"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/internal/engine"
)

// Store is an in-memory store.Store.
type Store struct {
	*store.Portable
}

var _ store.Store = (*Store)(nil)

// New returns an empty in-memory store. Close it to stop its lease reaper.
func New() *Store {
	e, err := engine.New(&backend{m: map[string]record{}, leases: map[string]store.LeaseID{}})
	if err != nil {
		// The in-memory backend cannot fail to list itself when empty.
		panic("mem: " + err.Error())
	}
	return &Store{Portable: store.New(e)}
}

type backend struct {
	mu sync.RWMutex
	m  map[string]record
	// leases holds the lease of each key written with one: few are, and
	// a record without the field makes every slot of m smaller.
	leases map[string]store.LeaseID
}

// record is an engine.Record without its lease.
type record struct {
	value []byte
	rev   int64
}

func (b *backend) lease(key string) store.LeaseID {
	if len(b.leases) == 0 {
		return 0
	}
	return b.leases[key]
}

func (b *backend) Get(key string) (engine.Record, bool, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	r, ok := b.m[key]
	if !ok {
		return engine.Record{}, false, nil
	}
	return engine.Record{Value: r.value, Rev: r.rev, Lease: b.lease(key)}, true, nil
}

func (b *backend) List(prefix string) ([]store.Entry, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []store.Entry
	for k, r := range b.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, store.Entry{Key: k, Value: r.value, Revision: r.rev, Lease: b.lease(k)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (b *backend) Commit(_ int64, writes []engine.Write) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(writes); n > 64 && n > 2*len(b.m) {
		// A commit much larger than the store (a plan's first records):
		// make room at once rather than growing the map step by step.
		m := make(map[string]record, len(b.m)+n)
		for k, r := range b.m {
			m[k] = r
		}
		b.m = m
	}
	for i := range writes {
		w := &writes[i]
		if w.Delete {
			delete(b.m, w.Key)
		} else {
			b.m[w.Key] = record{w.Rec.Value, w.Rec.Rev}
		}
		if w.Rec.Lease != 0 {
			b.leases[w.Key] = w.Rec.Lease
		} else if len(b.leases) > 0 {
			delete(b.leases, w.Key)
		}
	}
	return nil
}

func (b *backend) Rev() int64   { return 0 }
func (b *backend) Close() error { return nil }
