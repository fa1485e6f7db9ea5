package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLeaseLost is what a [Keeper]'s Err wraps once the lease may have
// expired: the store said it is gone, or it was not renewed before its
// deadline.
var ErrLeaseLost = errors.New("store: lease lost")

// Keeper renews one lease in the background, every TTL/3, and knows until
// when the lease surely lives: a renewal that starts at t extends the
// lease to at least t+TTL on the store, so the deadline is the start of
// the last successful renewal plus the TTL. Each renewal is bounded by
// that deadline, so a store that hangs cannot keep a Keeper waiting past
// it. When the deadline passes without a renewal, or the store reports the
// lease gone, Lost is closed: the holder must stop acting on the lease's
// behalf, and never later than the store itself expires the lease.
//
// [Lock] and package claim's sessions hold their leases through a Keeper.
type Keeper struct {
	s   Store
	id  LeaseID
	ttl time.Duration

	mu       sync.Mutex
	deadline time.Time
	err      error
	lost     chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// Keep starts renewing lease id of s, which was granted (or last renewed)
// with ttl at start: take start just before the Grant call. Stop the
// Keeper when done with the lease; Keep does not revoke it.
func Keep(s Store, id LeaseID, ttl time.Duration, start time.Time) *Keeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &Keeper{s: s, id: id, ttl: ttl, deadline: start.Add(ttl), lost: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go k.run(ctx)
	return k
}

// GrantKept grants a lease of ttl on s and keeps it.
func GrantKept(ctx context.Context, s Store, ttl time.Duration) (*Keeper, error) {
	start := time.Now()
	id, err := s.Grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return Keep(s, id, ttl, start), nil
}

func (k *Keeper) run(ctx context.Context) {
	defer close(k.done)
	tick := time.NewTicker(max(k.ttl/3, time.Millisecond))
	defer tick.Stop()
	var last error // the latest failed renewal, for Err
	for {
		deadline := k.Deadline()
		expire := time.NewTimer(time.Until(deadline))
		select {
		case <-ctx.Done():
			expire.Stop()
			return
		case <-expire.C:
			why := "no renewal succeeded before it"
			if last != nil {
				why = "the last renewal failed: " + last.Error()
			}
			k.markLost(fmt.Errorf("%w: lease %x may have expired at %s (%s)", ErrLeaseLost, int64(k.id), deadline.Format(time.RFC3339Nano), why))
			return
		case <-tick.C:
			expire.Stop()
		}
		start := time.Now()
		rctx, cancel := context.WithDeadline(ctx, deadline)
		err := k.s.KeepAlive(rctx, k.id)
		cancel()
		switch {
		case err == nil:
			last = nil
			k.mu.Lock()
			k.deadline = start.Add(k.ttl)
			k.mu.Unlock()
		case errors.Is(err, ErrLeaseNotFound):
			k.markLost(fmt.Errorf("%w: %w", ErrLeaseLost, err))
			return
		case ctx.Err() != nil:
			return
		default:
			// The store is unreachable or slow: try again next tick, until
			// the deadline says the lease may be gone.
			last = err
		}
	}
}

func (k *Keeper) markLost(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err == nil {
		k.err = err
		close(k.lost)
	}
}

// ID returns the kept lease.
func (k *Keeper) ID() LeaseID { return k.id }

// Lost is closed when the lease may have expired.
func (k *Keeper) Lost() <-chan struct{} { return k.lost }

// Err is nil while the lease is kept, and says why once Lost is closed
// (it wraps ErrLeaseLost).
func (k *Keeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Deadline returns until when the lease surely lives, by this process's
// clock.
func (k *Keeper) Deadline() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.deadline
}

// Stop ends the renewals and waits for them to stop. The lease is left to
// expire (or to be revoked by the caller). Stop may be called more than
// once.
func (k *Keeper) Stop() {
	k.cancel()
	<-k.done
}
