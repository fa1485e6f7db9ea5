package graph

import (
	"context"
	"sync"
	"time"
)

// Event is one transition of a node-role during [Apply], or a running
// role's report of its progress (Event.Progress).
type Event struct {
	Time       time.Time
	Deployment string
	// ID is the node-role ("etcd-member@n1"); Role and Node its parts.
	ID   string
	Role string
	Node string
	// State is the state entered.
	State State
	// Attempt counts runs of the node-role in this Apply, from 1.
	Attempt int
	// Duration is how long the attempt (or the whole run, for final
	// states) took.
	Duration time.Duration
	// Err is why it failed, or why an attempt failed (StateRetrying).
	Err error
	// BlockedBy is the node-role whose failure blocked this one.
	BlockedBy string
	// Why is the kind of the plan's or the executor's reason, Reason the
	// reason in words (for StateRetrying: when the next attempt starts).
	Why    ReasonKind
	Reason string
	// Progress, when set, is a running role's own report of how it is
	// getting on (role.Context.Progress: "waiting for 3/5 nodes Ready"),
	// not a transition: State is StateRunning, as it was. A subscriber
	// that counts transitions skips these.
	Progress string
}

// Subscriber receives events, in the manner of slog.Handler. Handle is
// called for one event at a time, in the order of the transitions, from
// the executor's goroutines: it must be quick and must not call back into
// the executor. Errors of role runs may carry whatever the role put in
// them; mason's own messages never contain attribute values.
type Subscriber interface {
	Handle(ctx context.Context, e Event)
}

// SubscriberFunc adapts a function to a Subscriber.
type SubscriberFunc func(ctx context.Context, e Event)

// Handle implements Subscriber.
func (f SubscriberFunc) Handle(ctx context.Context, e Event) { f(ctx, e) }

// Subscribers fans events out to several subscribers, in order.
func Subscribers(subs ...Subscriber) Subscriber {
	return SubscriberFunc(func(ctx context.Context, e Event) {
		for _, s := range subs {
			if s != nil {
				s.Handle(ctx, e)
			}
		}
	})
}

// emitter serialises events; a nil subscriber costs nothing.
type emitter struct {
	mu  sync.Mutex
	sub Subscriber
	ctx context.Context
}

func (em *emitter) on() bool { return em.sub != nil }

func (em *emitter) emit(e Event) {
	if em.sub == nil {
		return
	}
	em.mu.Lock()
	defer em.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	em.sub.Handle(em.ctx, e)
}

// progressOf is where attempt of node-role i sends its progress reports:
// an event each.
func (e *executor) progressOf(i int32, attempt int, why ReasonKind) func(string) {
	return func(msg string) {
		e.emit(i, Event{State: StateRunning, Attempt: attempt, Why: why, Progress: msg})
	}
}
