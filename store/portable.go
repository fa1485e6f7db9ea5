package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Driver is what a store backend implements: only what differs between
// backends. Nobody calls a Driver directly; a backend wraps its Driver
// with [New] and hands out the resulting [*Portable], which implements
// [Store]: Put, CompareAndSwap, Delete, the validation of transactions and
// key prefixes are written once there (Go CDK's split of a portable type
// over a narrow driver). The lock ([Acquire]) and lease keeping ([Keeper])
// are written once over [Store].
//
// Keys a Driver sees are full keys (the Portable's prefix included). The
// contract of each method is the Store method's of the same name, with
// these differences: Txn gets ops the Portable has checked (every key
// non-empty, no key written twice, known kinds; possibly none, which
// writes nothing and returns the current revision); Grant gets a positive
// ttl. A Driver must pass package storetest through New.
type Driver interface {
	Get(ctx context.Context, key string) (Entry, error)
	List(ctx context.Context, prefix string) ([]Entry, int64, error)
	Txn(ctx context.Context, ops []Op) (int64, error)
	Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, error)
	Grant(ctx context.Context, ttl time.Duration) (LeaseID, error)
	KeepAlive(ctx context.Context, id LeaseID) error
	Revoke(ctx context.Context, id LeaseID) error
	Close() error
}

// Portable is the Store every backend returns, over the backend's
// [Driver]. It is safe for concurrent use.
type Portable struct {
	d      Driver
	prefix string
	keys   atomic.Pointer[keySet] // kept for Txn's duplicate check
}

var _ Store = (*Portable)(nil)

// Option configures [New].
type Option func(*Portable)

// WithPrefix makes every key of the Store live under prefix in the
// backend: callers read and write "a", the backend holds prefix+"a", and
// keys outside prefix are invisible. Stores sharing one backend (one etcd
// cluster) must use prefixes that are not prefixes of each other; ending
// them with "/" makes that easy.
func WithPrefix(prefix string) Option { return func(p *Portable) { p.prefix = prefix } }

// New returns the portable Store over d. Backends call it; users call the
// backend's constructor (mem.New, bolt.Open, etcdstore.Open).
func New(d Driver, opts ...Option) *Portable {
	p := &Portable{d: d}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Prefix returns the prefix keys live under in the backend ("" for none).
func (p *Portable) Prefix() string { return p.prefix }

func (p *Portable) full(key string) string {
	if p.prefix == "" {
		return key
	}
	return p.prefix + key
}

func (p *Portable) trim(key string) string { return strings.TrimPrefix(key, p.prefix) }

// unprefix rewrites what a driver returned in full keys.
func (p *Portable) unprefix(err error) error {
	var ce *ConflictError
	if p.prefix != "" && errors.As(err, &ce) {
		ce.Key = p.trim(ce.Key)
	}
	return err
}

// Get implements [Store].
func (p *Portable) Get(ctx context.Context, key string) (Entry, error) {
	e, err := p.d.Get(ctx, p.full(key))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			// Name the key as the caller knows it.
			return Entry{}, fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		return Entry{}, err
	}
	e.Key = key
	return e, nil
}

// List implements [Store].
func (p *Portable) List(ctx context.Context, prefix string) ([]Entry, int64, error) {
	ents, rev, err := p.d.List(ctx, p.full(prefix))
	if err != nil {
		return nil, 0, err
	}
	if p.prefix != "" {
		for i := range ents {
			ents[i].Key = p.trim(ents[i].Key)
		}
	}
	return ents, rev, nil
}

// Put implements [Store].
func (p *Portable) Put(ctx context.Context, key string, value []byte, opts ...PutOption) (int64, error) {
	return p.Txn(ctx, PutOp(key, value, opts...))
}

// CompareAndSwap implements [Store].
func (p *Portable) CompareAndSwap(ctx context.Context, key string, rev int64, value []byte, opts ...PutOption) (int64, error) {
	return p.Txn(ctx, PutOp(key, value, opts...).IfRevision(rev))
}

// Delete implements [Store].
func (p *Portable) Delete(ctx context.Context, key string) error {
	_, err := p.Txn(ctx, DeleteOp(key))
	return err
}

// smallTxn is the size up to which duplicate keys are looked for without
// a map.
const smallTxn = 8

// Txn implements [Store].
func (p *Portable) Txn(ctx context.Context, ops ...Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var seen *keySet
	if len(ops) > smallTxn {
		// The Portable's set, unless another Txn has it now.
		if seen = p.keys.Swap(nil); seen == nil {
			seen = &keySet{}
		}
		seen.reset(len(ops))
		defer func() {
			if seen.clear(); len(seen.slots) <= maxKeySlots {
				p.keys.Store(seen)
			}
		}()
	}
	for i := range ops {
		op := &ops[i] // not a copy: an Op is large
		if op.Key == "" {
			return 0, errors.New("store: empty key in transaction")
		}
		switch op.Kind {
		case OpPut, OpDelete:
		case OpCheck:
			continue
		default:
			return 0, fmt.Errorf("store: op on %q has unknown kind %d", op.Key, op.Kind)
		}
		dup := false
		if seen != nil {
			dup = seen.add(ops, i)
		} else {
			for _, o := range ops[:i] {
				dup = dup || (o.Kind != OpCheck && o.Key == op.Key)
			}
		}
		if dup {
			return 0, fmt.Errorf("store: key %q written twice in one transaction", op.Key)
		}
	}
	if p.prefix != "" {
		full := make([]Op, len(ops))
		for i, op := range ops {
			op.Key = p.full(op.Key)
			full[i] = op
		}
		ops = full
	}
	rev, err := p.d.Txn(ctx, ops)
	return rev, p.unprefix(err)
}

// Watch implements [Store].
func (p *Portable) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, error) {
	ch, err := p.d.Watch(ctx, p.full(prefix), fromRev)
	if err != nil || p.prefix == "" {
		return ch, err
	}
	out := make(chan Event, cap(ch))
	go func() {
		defer close(out)
		for ev := range ch {
			ev.Key = p.trim(ev.Key)
			select {
			case out <- ev:
			case <-ctx.Done():
				// The driver closes ch when ctx ends; drain it so its
				// goroutine is not left blocked.
				for range ch {
				}
				return
			}
		}
	}()
	return out, nil
}

// Grant implements [Store].
func (p *Portable) Grant(ctx context.Context, ttl time.Duration) (LeaseID, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("store: lease TTL must be positive, got %v", ttl)
	}
	return p.d.Grant(ctx, ttl)
}

// KeepAlive implements [Store].
func (p *Portable) KeepAlive(ctx context.Context, id LeaseID) error { return p.d.KeepAlive(ctx, id) }

// Revoke implements [Store].
func (p *Portable) Revoke(ctx context.Context, id LeaseID) error { return p.d.Revoke(ctx, id) }

// Close implements [Store].
func (p *Portable) Close() error { return p.d.Close() }

// TxnLimiter is an optional capability of a Store, discovered by type
// assertion (or with [MaxTxnOps] and [MaxTxnBytes]): a backend that bounds
// one transaction's size implements it. Writers that batch many records
// (the graph's journal) split their batches to fit; a Txn over the limits
// fails. store/etcd implements it (etcd's --max-txn-ops and
// --max-request-bytes); the embedded backends have no such limits.
type TxnLimiter interface {
	// MaxTxnOps returns the most writes, and separately the most
	// conditions, one Txn may hold; 0 means no limit.
	MaxTxnOps() int
	// MaxTxnBytes returns the most key and value bytes one Txn may carry;
	// 0 means no limit.
	MaxTxnBytes() int
}

// MaxTxnOps returns s's limit on operations per Txn, or 0 when s has none
// (does not implement TxnLimiter).
func MaxTxnOps(s Store) int {
	if l, ok := s.(TxnLimiter); ok {
		return l.MaxTxnOps()
	}
	return 0
}

// MaxTxnBytes returns s's limit on bytes per Txn, or 0 when s has none.
func MaxTxnBytes(s Store) int {
	if l, ok := s.(TxnLimiter); ok {
		return l.MaxTxnBytes()
	}
	return 0
}
