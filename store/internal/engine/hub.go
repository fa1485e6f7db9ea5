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
	// copying once it is full.
	ring    []store.Event
	head, n int
	base    int64 // events with Revision >= base are all in the ring
	subs    map[*watcher]struct{}
	closed  bool
}

// ringSize bounds the history: the most recent events up to this many,
// whole revisions only (a revision partly pushed out goes entirely).
const ringSize = 2 * historySize

type watcher struct {
	prefix string
	mu     sync.Mutex
	queue  []store.Event
	wake   chan struct{}
	stop   chan struct{}
	once   sync.Once
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

// at returns the k-th oldest event in the ring.
func (h *hub) at(k int) *store.Event { return &h.ring[(h.head+k)%len(h.ring)] }

// dropOldest removes the oldest event and returns its revision.
func (h *hub) dropOldest() int64 {
	ev := h.at(0)
	rev := ev.Revision
	*ev = store.Event{} // keep no value alive
	h.head = (h.head + 1) % len(h.ring)
	h.n--
	return rev
}

// publish is called with the engine's write lock held, so calls arrive in
// revision order.
func (h *hub) publish(evs []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped := int64(-1)
	for _, ev := range evs {
		if h.n == len(h.ring) {
			if len(h.ring) < ringSize {
				grown := make([]store.Event, min(max(64, 2*len(h.ring)), ringSize))
				k := copy(grown, h.ring[h.head:])
				copy(grown[k:], h.ring[:h.head])
				h.ring, h.head = grown, 0
			} else {
				dropped = h.dropOldest()
			}
		}
		*h.at(h.n) = ev
		h.n++
	}
	if dropped >= 0 {
		// Drop whole revisions only, so a replay never starts mid-transaction.
		for h.n > 0 && h.at(0).Revision <= dropped {
			h.dropOldest()
		}
		if h.n > 0 {
			h.base = h.at(0).Revision
		} else {
			h.base = evs[len(evs)-1].Revision + 1
		}
	}
	for w := range h.subs {
		w.push(evs)
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
		var replay []store.Event
		for k := range h.n {
			if ev := h.at(k); ev.Revision >= fromRev {
				replay = append(replay, *ev)
			}
		}
		w.push(replay)
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
			w.queue = nil
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

func (w *watcher) push(evs []store.Event) {
	w.mu.Lock()
	n := 0
	for _, ev := range evs {
		if strings.HasPrefix(ev.Key, w.prefix) {
			w.queue = append(w.queue, ev)
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
