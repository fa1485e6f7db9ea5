package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is the persistence contract. Implementations are safe for concurrent
// use by multiple goroutines.
type Store interface {
	// Get returns the entry at key, or an error wrapping ErrNotFound.
	//
	// Values a Store returns (from Get, List and watch events) are to be
	// read, not changed: a backend may share them with what it stores and
	// with other readers (store/mem does), so copy one before modifying
	// it. Values passed to a write are copied: the caller may reuse them
	// once the write returns.
	Get(ctx context.Context, key string) (Entry, error)

	// List returns every entry whose key starts with prefix, sorted by key,
	// and the store revision the listing reflects. Pass that revision plus
	// one to Watch to see every change made after the listing.
	List(ctx context.Context, prefix string) ([]Entry, int64, error)

	// Put writes value at key unconditionally and returns the new revision.
	Put(ctx context.Context, key string, value []byte, opts ...PutOption) (int64, error)

	// CompareAndSwap writes value at key only if the key's current revision
	// is rev; rev 0 means "only if the key does not exist". On a mismatch it
	// returns a *ConflictError (which matches ErrConflict) and writes nothing.
	CompareAndSwap(ctx context.Context, key string, rev int64, value []byte, opts ...PutOption) (int64, error)

	// Delete removes key. Deleting a missing key is not an error and does not
	// advance the revision.
	Delete(ctx context.Context, key string) error

	// Txn applies ops atomically: either every condition holds and every
	// write happens under one new revision, or nothing is written and a
	// *ConflictError names the first failed condition.
	Txn(ctx context.Context, ops ...Op) (int64, error)

	// Watch streams the changes to keys under prefix. With fromRev 0 it
	// starts after the current revision; otherwise it first replays every
	// change with revision >= fromRev, or fails with ErrCompacted when the
	// backend no longer has that history. The channel is closed when ctx
	// ends or the store is closed.
	Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, error)

	// Grant creates a lease that expires after ttl unless kept alive.
	Grant(ctx context.Context, ttl time.Duration) (LeaseID, error)
	// KeepAlive renews the lease for another ttl. It fails with an error
	// wrapping ErrLeaseNotFound when the lease has already expired.
	KeepAlive(ctx context.Context, id LeaseID) error
	// Revoke ends the lease now and deletes the keys written with it.
	Revoke(ctx context.Context, id LeaseID) error

	// Close releases the store. Pending watches are closed.
	Close() error
}

// Entry is one stored key.
type Entry struct {
	Key   string
	Value []byte
	// Revision is the store revision of the entry's last write.
	Revision int64
	// Lease is the lease the entry was written with, or 0.
	Lease LeaseID
}

// EventType says what happened to a key.
type EventType int

// Event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

// String implements fmt.Stringer.
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a watcher.
type Event struct {
	Type     EventType
	Key      string
	Value    []byte // nil for deletes
	Revision int64
}

// LeaseID identifies a lease; 0 means no lease.
type LeaseID int64

// PutOption modifies a write.
type PutOption func(*Op)

// WithLease attaches the written key to a lease: the key is deleted when the
// lease expires or is revoked.
func WithLease(id LeaseID) PutOption { return func(o *Op) { o.Lease = id } }

// OpKind says what an [Op] does.
type OpKind int

// Op kinds.
const (
	OpPut OpKind = iota + 1
	OpDelete
	OpCheck // writes nothing; only a condition
)

// Op is one operation in a transaction. Build them with [PutOp], [DeleteOp]
// and [CheckOp], and add a condition with [Op.IfRevision].
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	Lease LeaseID
	// Check, when true, makes the transaction conditional on the key's
	// current revision being Rev (0: absent).
	Check bool
	Rev   int64
}

// PutOp writes value at key.
func PutOp(key string, value []byte, opts ...PutOption) Op {
	op := Op{Kind: OpPut, Key: key, Value: value}
	if len(opts) > 0 {
		op = withOptions(op, opts)
	}
	return op
}

// withOptions applies opts to a copy of op. It is apart from PutOp so
// that only a put with options moves its Op to the heap (an option takes
// its address).
//
//go:noinline
func withOptions(op Op, opts []PutOption) Op {
	for _, o := range opts {
		o(&op)
	}
	return op
}

// DeleteOp deletes key.
func DeleteOp(key string) Op { return Op{Kind: OpDelete, Key: key} }

// CheckOp writes nothing; it makes the transaction conditional on key being
// at revision rev (0: absent). Use it to fence writes to other keys, e.g. on
// the key that records who owns a lock.
func CheckOp(key string, rev int64) Op { return Op{Kind: OpCheck, Key: key, Check: true, Rev: rev} }

// IfRevision makes the op conditional: the transaction fails unless the
// key's current revision is rev (0: the key must not exist).
func (o Op) IfRevision(rev int64) Op {
	o.Check = true
	o.Rev = rev
	return o
}

// Errors every backend returns (wrapped, so test with errors.Is).
var (
	ErrNotFound      = errors.New("store: key not found")
	ErrConflict      = errors.New("store: revision conflict")
	ErrCompacted     = errors.New("store: requested revision is no longer available")
	ErrLeaseNotFound = errors.New("store: lease not found or expired")
	ErrClosed        = errors.New("store: closed")
)

// ConflictError reports a failed revision condition.
type ConflictError struct {
	Key  string
	Want int64 // the revision the caller expected (0: absent)
	Have int64 // the key's actual revision (0: absent)
}

// Error implements the error interface.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: conflict on %q: expected revision %d, found %d", e.Key, e.Want, e.Have)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
