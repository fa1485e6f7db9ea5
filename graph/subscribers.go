package graph

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"
)

// LogSubscriber logs every event to l: failures at Error, retries and
// blocked node-roles at Warn, pending ones at Debug, the rest (and the
// roles' progress reports) at Info.
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
		msg := e.ID + " " + e.State.String()
		if e.Progress != "" {
			attrs = append(attrs, slog.String("progress", e.Progress))
			msg = e.ID + ": " + e.Progress
		}
		l.LogAttrs(ctx, level, msg, attrs...)
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
	Progress   string    `json:"progress,omitempty"`
}

// JSONLines writes every event to w as one JSON object per line, for
// machines: {"time":…,"deployment":…,"id":…,"state":"failed",…}; a
// role's progress report has "progress" set.
func JSONLines(w io.Writer) Subscriber {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return SubscriberFunc(func(ctx context.Context, e Event) {
		j := jsonEvent{Time: e.Time.UTC(), Deployment: e.Deployment, ID: e.ID, Role: e.Role, Node: e.Node, State: e.State,
			Attempt: e.Attempt, DurationMS: float64(e.Duration.Microseconds()) / 1000, BlockedBy: e.BlockedBy, Reason: e.Reason,
			Progress: e.Progress}
		if e.Err != nil {
			j.Error = e.Err.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(j)
	})
}
