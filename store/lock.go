package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Lock is a mutual-exclusion lock held through a lease: if its holder dies,
// the lease expires and the lock is free again after at most its TTL. The
// lock's key holds a [Holder] record (owner, pid, host, since), which
// [TryAcquire] and [Acquire] report in a [*LockedError] when someone else
// has the lock.
//
// Holding a Lock does not by itself stop a holder that was paused past its
// TTL from writing after someone else took over. Fence writes instead: put
// CheckOp(l.Key(), l.Fence()) in the same Txn as the write, and the write
// fails once the lock has changed hands. Lost tells the holder when to
// stop, by its own clock, no later than the store expires the lease.
type Lock struct {
	s      Store
	key    string
	fence  int64
	holder Holder
	keep   *Keeper
}

// Acquire blocks until it holds the lock named key, or ctx ends. owner
// names the holder for people reading the store or a [*LockedError]
// ("mason apply", "controller-2"); the process id, host and time are
// recorded beside it. ttl bounds how long a dead holder keeps the lock.
// When ctx ends first, the error wraps ctx's error and a *LockedError
// naming the holder that was waited for.
func Acquire(ctx context.Context, s Store, key, owner string, ttl time.Duration) (*Lock, error) {
	return acquire(ctx, s, key, owner, ttl, true)
}

// TryAcquire takes the lock named key if it is free, and otherwise fails
// at once with a *LockedError (matching ErrLocked) naming the holder.
func TryAcquire(ctx context.Context, s Store, key, owner string, ttl time.Duration) (*Lock, error) {
	return acquire(ctx, s, key, owner, ttl, false)
}

func acquire(ctx context.Context, s Store, key, owner string, ttl time.Duration, wait bool) (*Lock, error) {
	fail := func(err error) (*Lock, error) { return nil, fmt.Errorf("store: lock %q: %w", key, err) }
	keep, err := GrantKept(ctx, s, ttl)
	if err != nil {
		return fail(err)
	}
	// drop ends the lease of an attempt that did not get the lock; bounded,
	// since ctx may be over and the store slow.
	drop := func() {
		keep.Stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
		defer cancel()
		_ = s.Revoke(rctx, keep.ID())
	}
	giveUp := func(err error) (*Lock, error) {
		drop()
		return fail(err)
	}
	for {
		me := Me(owner)
		rev, err := s.CompareAndSwap(ctx, key, 0, me.Marshal(), WithLease(keep.ID()))
		if err == nil {
			return &Lock{s: s, key: key, fence: rev, holder: me, keep: keep}, nil
		}
		if !errors.Is(err, ErrConflict) {
			return giveUp(err)
		}
		held := &LockedError{What: fmt.Sprintf("lock %q", key)}
		if e, err := s.Get(ctx, key); err == nil {
			held.Holder = ParseHolder(e.Value)
		}
		if !wait {
			drop()
			return nil, held
		}
		if err := waitDeleted(ctx, s, key, keep.Lost()); err != nil {
			if ctx.Err() != nil {
				drop()
				return nil, fmt.Errorf("store: gave up waiting (%w): %w", ctx.Err(), held)
			}
			return giveUp(err)
		}
		select {
		case <-keep.Lost():
			// Our lease lapsed while we waited (a slow store): start over
			// with a new one.
			keep.Stop()
			if keep, err = GrantKept(ctx, s, ttl); err != nil {
				return fail(err)
			}
		default:
		}
	}
}

// waitDeleted returns once key does not exist, or when stop is closed.
func waitDeleted(ctx context.Context, s Store, key string, stop <-chan struct{}) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ents, rev, err := s.List(wctx, key)
	if err != nil {
		return err
	}
	present := false
	for _, e := range ents {
		if e.Key == key {
			present = true
		}
	}
	if !present {
		return nil
	}
	ch, err := s.Watch(wctx, key, rev+1)
	if err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				if err := ctx.Err(); err != nil {
					return err
				}
				return ErrClosed
			}
			if ev.Key == key && ev.Type == EventDelete {
				return nil
			}
		case <-stop:
			return nil
		}
	}
}

// Key returns the lock's key.
func (l *Lock) Key() string { return l.key }

// Fence returns the revision at which this holder took the lock. It grows
// with every new holder; pass it to CheckOp to fence writes.
func (l *Lock) Fence() int64 { return l.fence }

// Lease returns the lease the lock is held through; keys written with it
// vanish when the lock is lost.
func (l *Lock) Lease() LeaseID { return l.keep.ID() }

// Holder returns what this lock recorded about its holder.
func (l *Lock) Holder() Holder { return l.holder }

// Lost is closed when the lock's lease may have expired (it could not be
// renewed before its deadline, or the store says it is gone): the holder
// must stop acting on the lock's behalf.
func (l *Lock) Lost() <-chan struct{} { return l.keep.Lost() }

// Err is nil while the lock is held, and says why once Lost is closed.
func (l *Lock) Err() error { return l.keep.Err() }

// Release gives the lock up and waits for its keep-alive to stop.
func (l *Lock) Release(ctx context.Context) error {
	l.keep.Stop()
	if err := l.s.Revoke(ctx, l.keep.ID()); err != nil && !errors.Is(err, ErrLeaseNotFound) {
		return fmt.Errorf("store: releasing lock %q: %w", l.key, err)
	}
	return nil
}
