package graph

import "fmt"

// State is where a node-role is in its life within one Apply.
type State uint8

// States. Pending, Running and Retrying are transient; the others are
// final for an Apply.
const (
	StatePending   State = iota + 1 // planned to run, waiting for what it needs
	StateRunning                    // Run in progress (see the attempt)
	StateRetrying                   // an attempt failed; waiting before the next
	StateSucceeded                  // Run returned an output, now in the journal
	StateFailed                     // every attempt failed, or a permanent error
	StateBlocked                    // not started: something it waits for failed or a breaker tripped
	StateSkipped                    // converged: nothing to do
)

var stateNames = [...]string{"", "pending", "running", "retrying", "succeeded", "failed", "blocked", "skipped"}

// String returns the state's name ("succeeded").
func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Final reports whether s ends a node-role's part in an Apply.
func (s State) Final() bool { return s >= StateSucceeded }

// MarshalText implements encoding.TextMarshaler ("succeeded").
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if i > 0 && n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("graph: unknown state %q", b)
}
