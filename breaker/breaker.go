package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is a breaker's state.
type State int

// States.
const (
	Closed State = iota
	Open
	HalfOpen
)

// String implements fmt.Stringer.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrOpen is matched (errors.Is) by the *OpenError a call gets while the
// breaker is open.
var ErrOpen = errors.New("circuit breaker open")

// OpenError is returned instead of calling through an open breaker.
type OpenError struct {
	Name     string
	Failures int       // consecutive failures that opened it
	Until    time.Time // when it lets a probe through
	Last     error     // the failure that opened it
}

// Error implements the error interface.
func (e *OpenError) Error() string {
	return fmt.Sprintf("%s: circuit breaker open after %d consecutive failures (retry after %s): last error: %v",
		e.Name, e.Failures, e.Until.Format(time.RFC3339), e.Last)
}

// Is makes errors.Is(err, ErrOpen) true.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Unwrap returns the failure that opened the breaker.
func (e *OpenError) Unwrap() error { return e.Last }

// Options configure a Breaker. Zero fields take the documented defaults.
type Options struct {
	// Name appears in errors ("vcenter 10.0.0.5").
	Name string
	// Failures is how many consecutive failures open the breaker; default 5.
	Failures int
	// OpenFor is how long it stays open before probing; default 30s.
	OpenFor time.Duration
	// HalfOpenProbes is how many calls may probe at once; default 1.
	HalfOpenProbes int
	// IsFailure decides whether an error counts against the remote side.
	// By default every error counts except context cancellation and
	// deadline expiry of the caller's own context.
	IsFailure func(error) bool
	// OnStateChange, if set, is called (outside the breaker's lock) on every
	// transition, for logs and metrics.
	OnStateChange func(name string, from, to State)
	// Now is the clock; tests replace it. Default time.Now.
	Now func() time.Time
}

// Breaker is a circuit breaker. It is safe for concurrent use.
type Breaker struct {
	o Options

	mu       sync.Mutex
	state    State
	failures int
	last     error
	openedAt time.Time
	probes   int
}

// New returns a closed breaker.
func New(o Options) *Breaker {
	if o.Failures <= 0 {
		o.Failures = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 30 * time.Second
	}
	if o.HalfOpenProbes <= 0 {
		o.HalfOpenProbes = 1
	}
	if o.IsFailure == nil {
		o.IsFailure = func(err error) bool {
			return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Name == "" {
		o.Name = "breaker"
	}
	return &Breaker{o: o}
}

// State returns the current state (an open breaker whose OpenFor has passed
// reports half-open).
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && !b.o.Now().Before(b.openedAt.Add(b.o.OpenFor)) {
		return HalfOpen
	}
	return b.state
}

// Do calls fn unless the breaker is open, and records the outcome.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	done, err := b.Allow()
	if err != nil {
		return err
	}
	err = fn(ctx)
	done(err)
	return err
}

// Allow asks to make one call. If the breaker is open it returns an
// *OpenError; otherwise the caller makes the call and must pass its result
// to done exactly once.
func (b *Breaker) Allow() (done func(error), err error) {
	b.mu.Lock()
	var change func()
	switch b.state {
	case Open:
		if b.o.Now().Before(b.openedAt.Add(b.o.OpenFor)) {
			e := &OpenError{Name: b.o.Name, Failures: b.failures, Until: b.openedAt.Add(b.o.OpenFor), Last: b.last}
			b.mu.Unlock()
			return nil, e
		}
		change = b.setLocked(HalfOpen)
		fallthrough
	case HalfOpen:
		if b.probes >= b.o.HalfOpenProbes {
			e := &OpenError{Name: b.o.Name, Failures: b.failures, Until: b.o.Now(), Last: b.last}
			b.mu.Unlock()
			notify(change)
			return nil, e
		}
		b.probes++
	}
	b.mu.Unlock()
	notify(change)
	var once sync.Once
	return func(err error) { once.Do(func() { b.record(err) }) }, nil
}

func (b *Breaker) record(err error) {
	b.mu.Lock()
	var change func()
	probing := b.state == HalfOpen
	if probing {
		b.probes--
	}
	switch {
	case err == nil || !b.o.IsFailure(err):
		if err == nil {
			b.failures = 0
			if b.state != Closed {
				change = b.setLocked(Closed)
			}
		}
	default:
		b.failures++
		b.last = err
		if probing || b.failures >= b.o.Failures {
			b.openedAt = b.o.Now()
			if b.state != Open {
				change = b.setLocked(Open)
			}
		}
	}
	b.mu.Unlock()
	notify(change)
}

// setLocked moves to s and returns the notification to send after unlocking.
func (b *Breaker) setLocked(s State) func() {
	from := b.state
	b.state = s
	if s != HalfOpen {
		b.probes = 0
	}
	if b.o.OnStateChange == nil || from == s {
		return nil
	}
	name, cb := b.o.Name, b.o.OnStateChange
	return func() { cb(name, from, s) }
}

func notify(f func()) {
	if f != nil {
		f()
	}
}
