package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/masonops/mason/store"
)

// hub fans events out to watchers in revision order and keeps a bounded
// history for replays.
type hub struct {
	mu      sync.Mutex
	history []store.Event // the most recent events (historySize to 2*historySize), oldest first
	base    int64         // events with Revision >= base are all in history
	subs    map[*watcher]struct{}
	closed  bool
}

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
	h.history = nil
	h.base = rev + 1
	if h.subs == nil {
		h.subs = map[*watcher]struct{}{}
	}
}

// publish is called with the engine's write lock held, so calls arrive in
// revision order.
func (h *hub) publish(evs []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history = append(h.history, evs...)
	// Trim only once the history is twice its bound, back down to the
	// bound: each event is copied O(1) times in all, instead of the whole
	// history being copied on every write once it is full.
	if len(h.history) > 2*historySize {
		cut := len(h.history) - historySize
		// Drop whole revisions only, so a replay never starts mid-transaction.
		for cut < len(h.history) && h.history[cut].Revision == h.history[cut-1].Revision {
			cut++
		}
		// In place: the array is reused, and the slots past the new end
		// are cleared so they do not keep old values alive.
		n := copy(h.history, h.history[cut:])
		clear(h.history[n:])
		h.history = h.history[:n]
		if len(h.history) > 0 {
			h.base = h.history[0].Revision
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
		for _, ev := range h.history {
			if ev.Revision >= fromRev {
				replay = append(replay, ev)
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
		if hasPrefix(ev.Key, w.prefix) {
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
