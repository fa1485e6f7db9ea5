package claim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/store"
)

// ErrLost is returned (wrapped) by fenced writes of a claim that is no
// longer held, and by every call on a lost or closed session.
var ErrLost = errors.New("claim: lost")

// HeldError reports that another session holds the claim. It matches
// store.ErrConflict.
type HeldError struct {
	ID    string
	Owner string // the holder's Options.Owner
	Rev   int64  // the revision of the holder's claim
}

// Error implements the error interface.
func (e *HeldError) Error() string {
	return fmt.Sprintf("claim: %q is held by %q (since revision %d)", e.ID, e.Owner, e.Rev)
}

// Is makes errors.Is(err, store.ErrConflict) true.
func (e *HeldError) Is(target error) bool { return target == store.ErrConflict }

// Options configure a [Session].
type Options struct {
	// Prefix is the store prefix claims live under, e.g.
	// "mason/graph/<deployment>/claims/".
	Prefix string
	// Owner names this controller in the store, for people and for
	// HeldError ("controller-2 pid 4711 on host-a").
	Owner string
	// TTL bounds how long a dead controller's claims outlive it. Zero means
	// 3s. On etcd the lease is counted in whole seconds.
	TTL time.Duration
}

// Session is one controller's membership: a lease the session renews every
// TTL/3 until Close, or until renewing fails for long enough that the lease
// may have expired (a [store.Keeper] holds it).
type Session struct {
	st   store.Store
	opts Options
	keep *store.Keeper

	mu       sync.Mutex
	closed   chan struct{} // closed by Close
	lost     chan struct{} // closed when keep is lost or the session closed
	lostOnce sync.Once
	claims   map[string]*Claim

	wg sync.WaitGroup
}

// NewSession grants the session's lease and starts renewing it.
func NewSession(ctx context.Context, st store.Store, opts Options) (*Session, error) {
	if opts.TTL == 0 {
		opts.TTL = 3 * time.Second
	}
	if opts.Owner == "" {
		return nil, errors.New("claim: Options.Owner is empty (name the controller, e.g. host and pid)")
	}
	keep, err := store.GrantKept(ctx, st, opts.TTL)
	if err != nil {
		return nil, fmt.Errorf("claim: granting the session lease for %q: %w", opts.Owner, err)
	}
	s := &Session{
		st: st, opts: opts, keep: keep,
		closed: make(chan struct{}),
		lost:   make(chan struct{}),
		claims: map[string]*Claim{},
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-keep.Lost():
			s.markLost()
		case <-s.closed:
		}
	}()
	return s, nil
}

func (s *Session) markLost() {
	s.lostOnce.Do(func() { close(s.lost) })
}

// Lost is closed when the session's lease may have expired: every claim of
// the session may now be someone else's, so the controller must stop the
// work it claimed. Start a new session to go on.
func (s *Session) Lost() <-chan struct{} { return s.lost }

// Lease returns the session's lease.
func (s *Session) Lease() store.LeaseID { return s.keep.ID() }

// Err says why the session was lost: its lease could not be renewed in
// time or is gone (wrapping store.ErrLeaseLost), or it was closed. It is
// nil while the session lives.
func (s *Session) Err() error {
	select {
	case <-s.lost:
	default:
		return nil
	}
	if err := s.keep.Err(); err != nil {
		return err
	}
	return errors.New("claim: session closed")
}

// Owner returns the session's Options.Owner.
func (s *Session) Owner() string { return s.opts.Owner }

// Key returns the store key of the claim on id.
func (s *Session) Key(id string) string { return s.opts.Prefix + id }

func (s *Session) alive() error {
	select {
	case <-s.lost:
		return fmt.Errorf("claim: session of %q: %w (its lease expired or the session was closed; start a new session)", s.opts.Owner, ErrLost)
	default:
		return nil
	}
}

// Claim takes the claim on id for this session. If another session holds
// it, Claim returns a *HeldError naming the holder; watch Key(id) for its
// deletion (or use [Session.WaitFree]) and try again. Claiming an id the
// session already holds returns the held claim.
func (s *Session) Claim(ctx context.Context, id string) (*Claim, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := s.claims[id]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	key := s.Key(id)
	rev, err := s.st.CompareAndSwap(ctx, key, 0, []byte(s.opts.Owner), store.WithLease(s.keep.ID()))
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		held := &HeldError{ID: id, Rev: ce.Have}
		if e, gerr := s.st.Get(ctx, key); gerr == nil {
			held.Owner, held.Rev = string(e.Value), e.Revision
		}
		return nil, held
	case errors.Is(err, store.ErrLeaseNotFound):
		s.markLost()
		return nil, s.alive()
	case err != nil:
		return nil, fmt.Errorf("claim: claiming %q for %q: %w", id, s.opts.Owner, err)
	}
	c = &Claim{s: s, id: id, key: key, rev: rev}
	s.mu.Lock()
	s.claims[id] = c
	s.mu.Unlock()
	return c, nil
}

// Held returns the claim the session holds on id, or nil.
func (s *Session) Held(id string) *Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims[id]
}

// Fences returns one fence op per id that the session holds a claim on,
// for a batch that writes records of several ids in one transaction. An id
// the session does not hold gets a fence that always fails (a check that
// its claim key is at revision -1), so a batch never writes for work it
// does not own.
func (s *Session) Fences(ids ...string) []store.Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := make([]store.Op, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if c := s.claims[id]; c != nil {
			ops = append(ops, c.Fence())
		} else {
			ops = append(ops, store.CheckOp(s.Key(id), -1))
		}
	}
	return ops
}

// LostID says which id's claim made a fenced transaction fail, if err is
// a fence conflict on one of this session's claim keys.
func (s *Session) LostID(err error) (string, bool) {
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Key, s.opts.Prefix) {
		return "", false
	}
	return strings.TrimPrefix(ce.Key, s.opts.Prefix), true
}

// Forget drops the session's record of the claim on id after a fenced
// write found it lost, so Claim can try to take it again.
func (s *Session) Forget(id string) {
	s.mu.Lock()
	delete(s.claims, id)
	s.mu.Unlock()
}

// WaitFree blocks until nobody holds the claim on id, or ctx ends.
func (s *Session) WaitFree(ctx context.Context, id string) error {
	key := s.Key(id)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ents, rev, err := s.st.List(wctx, key)
	if err != nil {
		return fmt.Errorf("claim: waiting for %q: %w", id, err)
	}
	held := false
	for _, e := range ents {
		held = held || e.Key == key
	}
	if !held {
		return nil
	}
	ch, err := s.st.Watch(wctx, key, rev+1)
	if err != nil {
		return fmt.Errorf("claim: waiting for %q: %w", id, err)
	}
	for ev := range ch {
		if ev.Key == key && ev.Type == store.EventDelete {
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("claim: waiting for %q: %w", id, store.ErrClosed)
}

// Close stops renewing and revokes the lease, which deletes every claim
// the session still holds, so others can take the work at once.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	s.keep.Stop()
	s.wg.Wait()
	s.markLost()
	if err := s.st.Revoke(ctx, s.keep.ID()); err != nil && !errors.Is(err, store.ErrLeaseNotFound) {
		return fmt.Errorf("claim: closing the session of %q: %w", s.opts.Owner, err)
	}
	return nil
}

// Claim is a claim held by a session on one id.
type Claim struct {
	s   *Session
	id  string
	key string
	rev int64
}

// ID returns the claimed id.
func (c *Claim) ID() string { return c.id }

// Rev returns the revision at which the claim was taken: the fencing
// token. A later claim on the same id always has a larger one.
func (c *Claim) Rev() int64 { return c.rev }

// Fence returns the condition that makes a transaction fail once this
// claim is no longer held.
func (c *Claim) Fence() store.Op { return store.CheckOp(c.key, c.rev) }

// Txn applies ops fenced by the claim: atomically, and only while the
// claim is held. When it is not, nothing is written and the error wraps
// ErrLost and the *store.ConflictError on the claim key.
func (c *Claim) Txn(ctx context.Context, ops ...store.Op) (int64, error) {
	fenced := make([]store.Op, 0, len(ops)+1)
	fenced = append(append(fenced, ops...), c.Fence())
	rev, err := c.s.st.Txn(ctx, fenced...)
	var ce *store.ConflictError
	if errors.As(err, &ce) && ce.Key == c.key {
		c.s.Forget(c.id)
		return 0, fmt.Errorf("claim: %q of %q: %w (%w)", c.id, c.s.opts.Owner, ErrLost, err)
	}
	return rev, err
}

// Release gives the claim up: it deletes the claim key if it is still this
// claim's. Releasing a claim that was already lost is not an error.
func (c *Claim) Release(ctx context.Context) error {
	c.s.Forget(c.id)
	_, err := c.s.st.Txn(ctx, store.DeleteOp(c.key), c.Fence())
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("claim: releasing %q of %q: %w", c.id, c.s.opts.Owner, err)
	}
	return nil
}
