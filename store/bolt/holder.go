package bolt

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/masonops/mason/store"
)

// While a Store is open, a holder record (a store.Holder as JSON) sits
// beside its file at path+".holder", so that a second opener can say who
// has the file instead of only that it is locked: bbolt's lock (flock)
// does not tell. The record is advisory — the lock is bbolt's — and
// written on a best-effort basis (a read-only directory leaves none).
func holderPath(path string) string { return path + ".holder" }

func writeHolder(path, owner string) {
	tmp := holderPath(path) + ".tmp"
	if err := os.WriteFile(tmp, store.Me(owner).Marshal(), 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, holderPath(path)); err != nil {
		_ = os.Remove(tmp)
	}
}

func removeHolder(path string) { _ = os.Remove(holderPath(path)) }

// readHolder returns the recorded holder of the file at path, or the zero
// Holder when there is no record or it names a process of this host that
// no longer runs (left behind by a crash; the lock is then someone else's).
func readHolder(path string) store.Holder {
	b, err := os.ReadFile(holderPath(path))
	if err != nil {
		return store.Holder{}
	}
	h := store.ParseHolder(b)
	if host, _ := os.Hostname(); h.Host == host && h.PID > 0 && !h.ThisProcess() {
		if err := syscall.Kill(h.PID, 0); errors.Is(err, syscall.ESRCH) {
			return store.Holder{}
		}
	}
	return h
}

// holderGrace is how long a second opener waits for the holder record of
// a file it found locked: the winner of a race for the lock writes it a
// moment after taking the lock.
const holderGrace = time.Second

func lockedError(path string, waited time.Duration) error {
	h := readHolder(path)
	for start := time.Now(); !h.Known() && time.Since(start) < holderGrace; {
		time.Sleep(20 * time.Millisecond)
		h = readHolder(path)
	}
	e := &store.LockedError{What: "state file " + path, Holder: h}
	still := ""
	if waited > 0 {
		still = fmt.Sprintf(" (still locked after %v)", waited)
	}
	switch {
	case h.ThisProcess():
		e.Hint = "close the store that has it open before opening it again (a state file can be open once at a time, within a process too)"
	case h.Known():
		e.Hint = "stop that process or wait for it to finish" + still
	default:
		e.Holder = store.Holder{}
		e.Hint = "another process has it open" + still + "; stop it or wait for it to finish"
	}
	return fmt.Errorf("bolt: %w", e)
}
