package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/masonops/mason/store"
)

// hub fans events out to watchers in revision order and keeps a bounded
// history for replays.
type hub struct {
	mu sync.Mutex
	// ring holds the most recent events (at most ringSize), oldest first
	// from head, n of them: a ring, so that keeping the history costs no
	// copying once it is full. It is made of blocks of ringBlock events,
	// added as the history grows (head is 0 until the ring is full), so
	// that growing it copies nothing either.
	ring    [][]past
	head, n int
	base    int64 // events with Revision >= base are all in the ring
	subs    map[*watcher]struct{}
	closed  bool
}

// ringSize bounds the history: the most recent events up to this many,
// whole revisions only (a revision partly pushed out goes entirely).
const ringSize = 2 * historySize

// past is an event of the history, smaller than a store.Event (the
// history holds up to ringSize of them): a nil value is a delete.
type past struct {
	key   string
	value []byte
	rev   int64
}

func (p *past) event() store.Event {
	if p.value == nil {
		return store.Event{Type: store.EventDelete, Key: p.key, Revision: p.rev}
	}
	return store.Event{Type: store.EventPut, Key: p.key, Value: p.value, Revision: p.rev}
}

// ringBlock is the number of events in a block of the ring; ringSize is a
// multiple of it.
const ringBlock = 512

type watcher struct {
	prefix string
	mu     sync.Mutex
	queue  []store.Event
	// spare is the queue the goroutine sent last, emptied, for pushes to
	// fill once it takes queue: two queues alternate rather than a new
	// one growing for every transaction.
	spare []store.Event
	wake  chan struct{}
	stop  chan struct{}
	once  sync.Once
}

func (h *hub) init(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring, h.head, h.n = nil, 0, 0
	h.base = rev + 1
	if h.subs == nil {
		h.subs = map[*watcher]struct{}{}
	}
}

// size returns the number of events the ring has room for.
func (h *hub) size() int { return len(h.ring) * ringBlock }

// at returns the k-th oldest event in the ring.
func (h *hub) at(k int) *past {
	i := h.head + k
	if i >= h.size() {
		i -= h.size()
	}
	return &h.ring[i/ringBlock][i%ringBlock]
}

// dropOldest removes the oldest event and returns its revision.
func (h *hub) dropOldest() int64 {
	ev := h.at(0)
	rev := ev.rev
	*ev = past{} // keep no value alive
	if h.head++; h.head == h.size() {
		h.head = 0
	}
	h.n--
	return rev
}

// event returns the event of write w at revision rev.
func event(w *Write, rev int64) store.Event {
	if w.Delete {
		return store.Event{Type: store.EventDelete, Key: w.Key, Revision: rev}
	}
	return store.Event{Type: store.EventPut, Key: w.Key, Value: w.Rec.Value, Revision: rev}
}

// publish is called with the engine's write lock held, so calls arrive in
// revision order. The events share the writes' values, which nobody
// changes once written.
func (h *hub) publish(rev int64, writes []Write) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped := int64(-1)
	for i := range writes {
		if h.n == h.size() {
			if h.size() < ringSize {
				// Not full yet, so nothing was dropped: head is 0 and
				// the new block goes after the newest event.
				h.ring = append(h.ring, make([]past, ringBlock))
			} else {
				dropped = h.dropOldest()
			}
		}
		w := &writes[i]
		ev := past{key: w.Key, rev: rev}
		if !w.Delete {
			ev.value = w.Rec.Value
			if ev.value == nil {
				ev.value = []byte{}
			}
		}
		*h.at(h.n) = ev
		h.n++
	}
	if dropped >= 0 {
		// Drop whole revisions only, so a replay never starts mid-transaction.
		for h.n > 0 && h.at(0).rev <= dropped {
			h.dropOldest()
		}
		if h.n > 0 {
			h.base = h.at(0).rev
		} else {
			h.base = rev + 1
		}
	}
	for w := range h.subs {
		w.pushWrites(rev, writes)
	}
}

func (h *hub) subscribe(ctx context.Context, prefix string, fromRev int64) (<-chan store.Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, store.ErrClosed
	}
	w := &watcher{prefix: prefix, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	if fromRev > 0 {
		if fromRev < h.base {
			return nil, fmt.Errorf("%w: watch from revision %d, oldest available is %d", store.ErrCompacted, fromRev, h.base)
		}
		// The watcher is not running yet: its queue starts with the
		// replay, and its goroutine sends that before it waits.
		for k := range h.n {
			if ev := h.at(k); ev.rev >= fromRev && strings.HasPrefix(ev.key, prefix) {
				w.queue = append(w.queue, ev.event())
			}
		}
	}
	h.subs[w] = struct{}{}
	out := make(chan store.Event, 64)
	go func() {
		defer close(out)
		defer func() {
			h.mu.Lock()
			delete(h.subs, w)
			h.mu.Unlock()
		}()
		for {
			w.mu.Lock()
			q := w.queue
			w.queue, w.spare = w.spare, nil
			w.mu.Unlock()
			for _, ev := range q {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-w.stop:
					return
				}
			}
			if q = keep(q); q != nil {
				w.mu.Lock()
				w.spare = q
				w.mu.Unlock()
			}
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			}
		}
	}()
	return out, nil
}

// pushWrites queues the events of writes under w's prefix.
func (w *watcher) pushWrites(rev int64, writes []Write) {
	w.mu.Lock()
	n := 0
	for i := range writes {
		if strings.HasPrefix(writes[i].Key, w.prefix) {
			w.queue = append(w.queue, event(&writes[i], rev))
			n++
		}
	}
	w.mu.Unlock()
	if n > 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.subs {
		w.once.Do(func() { close(w.stop) })
	}
}
