package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/masonops/mason/graph"
)

// Progress writes one line per interesting transition of an Apply:
// started, retrying, succeeded, failed, blocked; with a done/total count.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int
	done  int
}

// NewProgress returns a Progress for an apply of total node-roles that run.
func NewProgress(w io.Writer, total int) *Progress { return &Progress{w: w, total: total} }

// Handle implements graph.Subscriber.
func (p *Progress) Handle(_ context.Context, e graph.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.State {
	case graph.StateRunning:
		if e.Attempt > 1 {
			fmt.Fprintf(p.w, "[%d/%d] running   %s (attempt %d)\n", p.done, p.total, e.ID, e.Attempt)
		} else {
			fmt.Fprintf(p.w, "[%d/%d] running   %s: %s\n", p.done, p.total, e.ID, e.Reason)
		}
	case graph.StateRetrying:
		fmt.Fprintf(p.w, "[%d/%d] retrying  %s after attempt %d: %v\n", p.done, p.total, e.ID, e.Attempt, e.Err)
	case graph.StateSucceeded:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] ok        %s (%s)\n", p.done, p.total, e.ID, e.Duration.Round(time.Millisecond))
	case graph.StateFailed:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] FAILED    %s: %v\n", p.done, p.total, e.ID, e.Err)
	case graph.StateBlocked:
		p.done++
		fmt.Fprintf(p.w, "[%d/%d] blocked   %s: by %s\n", p.done, p.total, e.ID, e.BlockedBy)
	case graph.StateSkipped:
		if e.Reason != "" && e.Reason != "converged" {
			p.done++
			fmt.Fprintf(p.w, "[%d/%d] unchanged %s: %s\n", p.done, p.total, e.ID, e.Reason)
		}
	}
}

// JSONLines writes every event as one JSON object per line.
type JSONLines struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSONLines returns a JSONLines writing to w.
func NewJSONLines(w io.Writer) *JSONLines { return &JSONLines{enc: json.NewEncoder(w)} }

type jsonEvent struct {
	Time       time.Time   `json:"time"`
	Deployment string      `json:"deployment"`
	ID         string      `json:"id"`
	Role       string      `json:"role"`
	Node       string      `json:"node,omitempty"`
	State      graph.State `json:"state"`
	Attempt    int         `json:"attempt,omitempty"`
	DurationMS int64       `json:"duration_ms,omitempty"`
	Error      string      `json:"error,omitempty"`
	BlockedBy  string      `json:"blocked_by,omitempty"`
	Reason     string      `json:"reason,omitempty"`
}

// Handle implements graph.Subscriber.
func (j *JSONLines) Handle(_ context.Context, e graph.Event) {
	je := jsonEvent{Time: e.Time, Deployment: e.Deployment, ID: e.ID, Role: e.Role, Node: e.Node, State: e.State,
		Attempt: e.Attempt, DurationMS: e.Duration.Milliseconds(), BlockedBy: e.BlockedBy, Reason: e.Reason}
	if e.Err != nil {
		je.Error = e.Err.Error()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(je) // a broken pipe must not stop the apply
}
