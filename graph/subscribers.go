package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// LogSubscriber logs every event to l: failures at Error, retries and
// blocked node-roles at Warn, pending ones at Debug, the rest at Info.
func LogSubscriber(l *slog.Logger) Subscriber {
	return SubscriberFunc(func(ctx context.Context, e Event) {
		level := slog.LevelInfo
		switch e.State {
		case StateFailed:
			level = slog.LevelError
		case StateRetrying, StateBlocked:
			level = slog.LevelWarn
		case StatePending:
			level = slog.LevelDebug
		}
		if !l.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{slog.String("deployment", e.Deployment), slog.String("id", e.ID), slog.String("role", e.Role)}
		if e.Node != "" {
			attrs = append(attrs, slog.String("node", e.Node))
		}
		attrs = append(attrs, slog.String("state", e.State.String()))
		if e.Attempt > 0 {
			attrs = append(attrs, slog.Int("attempt", e.Attempt))
		}
		if e.Duration > 0 {
			attrs = append(attrs, slog.Duration("duration", e.Duration))
		}
		if e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
		if e.BlockedBy != "" {
			attrs = append(attrs, slog.String("blocked_by", e.BlockedBy))
		}
		if e.Reason != "" {
			attrs = append(attrs, slog.String("reason", e.Reason))
		}
		l.LogAttrs(ctx, level, e.ID+" "+e.State.String(), attrs...)
	})
}

// jsonEvent is an Event as one JSON line.
type jsonEvent struct {
	Time       time.Time `json:"time"`
	Deployment string    `json:"deployment"`
	ID         string    `json:"id"`
	Role       string    `json:"role"`
	Node       string    `json:"node,omitempty"`
	State      State     `json:"state"`
	Attempt    int       `json:"attempt,omitempty"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Error      string    `json:"error,omitempty"`
	BlockedBy  string    `json:"blocked_by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
}

// JSONLines writes every event to w as one JSON object per line, for
// machines: {"time":…,"deployment":…,"id":…,"state":"failed",…}.
func JSONLines(w io.Writer) Subscriber {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return SubscriberFunc(func(ctx context.Context, e Event) {
		j := jsonEvent{Time: e.Time.UTC(), Deployment: e.Deployment, ID: e.ID, Role: e.Role, Node: e.Node, State: e.State,
			Attempt: e.Attempt, DurationMS: float64(e.Duration.Microseconds()) / 1000, BlockedBy: e.BlockedBy, Reason: e.Reason}
		if e.Err != nil {
			j.Error = e.Err.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(j)
	})
}

// Progress is a line-oriented progress display for terminals (and logs
// that keep lines): a status line with counts per state, what is running
// and the elapsed time, and a line for every failure, retry and blocked
// node-role. Create it with NewProgress.
type Progress struct {
	// Interval is the least time between two status lines; 0 prints one
	// after every node-role that finishes. The last one is always printed.
	Interval time.Duration

	mu      sync.Mutex
	w       io.Writer
	start   time.Time
	last    time.Time
	states  map[string]State
	running map[string]time.Time
	now     func() time.Time
}

// NewProgress returns a Progress writing to w, at most one status line a
// second.
func NewProgress(w io.Writer) *Progress {
	return &Progress{Interval: time.Second, w: w, states: map[string]State{}, running: map[string]time.Time{}, now: time.Now}
}

// Handle implements Subscriber.
func (p *Progress) Handle(_ context.Context, e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	p.states[e.ID] = e.State
	switch e.State {
	case StateRunning:
		p.running[e.ID] = now
	default:
		delete(p.running, e.ID)
	}
	el := p.elapsed(now)
	switch e.State {
	case StateFailed:
		fmt.Fprintf(p.w, "[%s] FAILED %s (attempt %d): %v\n", el, e.ID, e.Attempt, e.Err)
	case StateRetrying:
		fmt.Fprintf(p.w, "[%s] retry  %s: %v; %s\n", el, e.ID, e.Err, e.Reason)
	case StateBlocked:
		fmt.Fprintf(p.w, "[%s] blocked %s: %s\n", el, e.ID, e.Reason)
	}
	if !e.State.Final() {
		return
	}
	done := p.count(func(s State) bool { return s.Final() })
	if done == len(p.states) || p.Interval == 0 || now.Sub(p.last) >= p.Interval {
		p.last = now
		p.status(el, done)
	}
}

func (p *Progress) elapsed(now time.Time) string {
	return fmt.Sprintf("%6.1fs", now.Sub(p.start).Seconds())
}

func (p *Progress) count(f func(State) bool) int {
	n := 0
	for _, s := range p.states {
		if f(s) {
			n++
		}
	}
	return n
}

func (p *Progress) status(el string, done int) {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %d/%d done", el, done, len(p.states))
	for _, st := range []State{StateSucceeded, StateSkipped, StateFailed, StateBlocked} {
		if n := p.count(func(s State) bool { return s == st }); n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, st)
		}
	}
	if len(p.running) > 0 {
		ids := make([]string, 0, len(p.running))
		for id := range p.running {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		more := ""
		if len(ids) > 5 {
			more = fmt.Sprintf(" (+%d)", len(ids)-5)
			ids = ids[:5]
		}
		fmt.Fprintf(&b, "; running %d: %s%s", len(p.running), strings.Join(ids, ", "), more)
	}
	b.WriteByte('\n')
	io.WriteString(p.w, b.String())
}
