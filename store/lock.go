package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lock is a mutual-exclusion lock held through a lease: if its holder dies,
// the lease expires and the lock is free again after at most its TTL.
//
// Holding a Lock does not by itself stop a holder that was paused past its
// TTL from writing after someone else took over. Fence writes instead: put
// CheckOp(l.Key(), l.Fence()) in the same Txn as the write, and the write
// fails once the lock has changed hands.
type Lock struct {
	s     Store
	key   string
	lease LeaseID
	fence int64

	lost   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Acquire blocks until it holds the lock named key, or ctx ends. owner is
// stored as the key's value, for people reading the store ("controller-2
// pid 4711"). ttl bounds how long a dead holder keeps the lock.
func Acquire(ctx context.Context, s Store, key, owner string, ttl time.Duration) (*Lock, error) {
	lease, err := s.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("store: lock %q: %w", key, err)
	}
	for {
		rev, err := s.CompareAndSwap(ctx, key, 0, []byte(owner), WithLease(lease))
		if err == nil {
			kctx, cancel := context.WithCancel(context.Background())
			l := &Lock{s: s, key: key, lease: lease, fence: rev, lost: make(chan struct{}), cancel: cancel}
			l.wg.Add(1)
			go l.keepAlive(kctx, ttl)
			return l, nil
		}
		if !errors.Is(err, ErrConflict) {
			_ = s.Revoke(context.Background(), lease)
			return nil, fmt.Errorf("store: lock %q: %w", key, err)
		}
		if err := waitDeleted(ctx, s, key); err != nil {
			_ = s.Revoke(context.Background(), lease)
			return nil, fmt.Errorf("store: lock %q: %w", key, err)
		}
		// The lease must stay alive while we wait for a slow holder.
		if err := s.KeepAlive(ctx, lease); err != nil {
			if lease, err = s.Grant(ctx, ttl); err != nil {
				return nil, fmt.Errorf("store: lock %q: %w", key, err)
			}
		}
	}
}

// waitDeleted returns once key does not exist.
func waitDeleted(ctx context.Context, s Store, key string) error {
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
	for ev := range ch {
		if ev.Key == key && ev.Type == EventDelete {
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrClosed
}

func (l *Lock) keepAlive(ctx context.Context, ttl time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.s.KeepAlive(ctx, l.lease); err != nil {
				if ctx.Err() == nil {
					close(l.lost)
				}
				return
			}
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
func (l *Lock) Lease() LeaseID { return l.lease }

// Lost is closed when the lock's lease could not be renewed: the holder must
// stop acting on the lock's behalf.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Release gives the lock up and waits for its keep-alive to stop.
func (l *Lock) Release(ctx context.Context) error {
	l.cancel()
	l.wg.Wait()
	if err := l.s.Revoke(ctx, l.lease); err != nil && !errors.Is(err, ErrLeaseNotFound) {
		return fmt.Errorf("store: releasing lock %q: %w", l.key, err)
	}
	return nil
}
