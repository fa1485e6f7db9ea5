package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrLocked is matched by every error that reports a lock held by someone
// else: a [*LockedError] from [TryAcquire] or [Acquire], and the bolt
// backend's "state file in use".
var ErrLocked = errors.New("store: locked")

// Holder says who holds a lock, as recorded when the lock was taken.
type Holder struct {
	// Owner is the name the holder gave ("mason apply", "controller-2").
	Owner string `json:"owner"`
	// PID and Host are the holding process's id and host name.
	PID  int    `json:"pid,omitempty"`
	Host string `json:"host,omitempty"`
	// Since is when the lock was taken.
	Since time.Time `json:"since,omitzero"`
}

// Me returns the Holder record of this process, taking a lock now under
// the name owner.
func Me(owner string) Holder {
	host, _ := os.Hostname()
	return Holder{Owner: owner, PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Millisecond)}
}

// ThisProcess reports whether the holder is the calling process (same pid
// on the same host).
func (h Holder) ThisProcess() bool {
	if h.PID != os.Getpid() {
		return false
	}
	host, _ := os.Hostname()
	return h.Host == host
}

// Known reports whether anything is known of the holder.
func (h Holder) Known() bool { return h != Holder{} }

// String describes the holder for people: "mason apply (pid 4711 on
// host-a, since 2026-12-01 16:03:11 UTC)", or "this process (…)".
func (h Holder) String() string {
	if !h.Known() {
		return "an unknown holder"
	}
	who := h.Owner
	if who == "" {
		who = "a process"
	}
	if h.ThisProcess() {
		who = "this process"
		if h.Owner != "" {
			who += " (" + h.Owner + ")"
		}
	}
	var detail string
	if h.PID != 0 {
		detail = fmt.Sprintf("pid %d", h.PID)
		if h.Host != "" {
			detail += " on " + h.Host
		}
	}
	if !h.Since.IsZero() {
		if detail != "" {
			detail += ", "
		}
		detail += "since " + h.Since.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if detail == "" {
		return who
	}
	return who + " (" + detail + ")"
}

// Marshal encodes the holder as a lock's stored value.
func (h Holder) Marshal() []byte {
	b, _ := json.Marshal(h) // a struct of strings, an int and a time
	return b
}

// ParseHolder decodes a lock's stored value. A value that is not a
// recorded Holder (a lock taken by an older version, which stored only the
// owner's name) becomes a Holder with just that Owner.
func ParseHolder(b []byte) Holder {
	var h Holder
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &h) == nil {
		return h
	}
	return Holder{Owner: string(b)}
}

// LockedError reports a lock someone holds. It matches ErrLocked.
type LockedError struct {
	// What names what is locked: `lock "mason/lock/nodes/prod"`, `state
	// file /var/lib/app/state.db`.
	What string
	// Holder is who holds it, as far as is known (see Holder.Known).
	Holder Holder
	// Hint says what to do, for people.
	Hint string
}

// Error implements the error interface.
func (e *LockedError) Error() string {
	msg := fmt.Sprintf("%s is held by %s", e.What, e.Holder)
	switch {
	case !e.Holder.Known():
		msg = e.What + " is held by someone else"
	case e.Holder.ThisProcess():
		msg = fmt.Sprintf("%s is already held by %s", e.What, e.Holder)
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
