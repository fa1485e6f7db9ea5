package bolt

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt is matched by the error of every call on a state file found
// damaged: a *CorruptError naming the file, what is wrong with it and its
// backup.
var ErrCorrupt = errors.New("bolt: state file is corrupt")

// CorruptError reports a damaged state file. It matches ErrCorrupt.
type CorruptError struct {
	// Path is the damaged file.
	Path string
	// Reason says what was found wrong.
	Reason error
	// Backup is the backup beside the file (BackupPath), or "" when there
	// is none; BackupTime is when it was written.
	Backup     string
	BackupTime time.Time
}

// Error says what is wrong and what to do.
func (e *CorruptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bolt: state file %s is corrupt: %v; ", e.Path, e.Reason)
	if e.Backup != "" {
		fmt.Fprintf(&b, "restore the backup written when it was last opened or closed cleanly, %s (%s): move the damaged file aside and copy the backup in its place (bolt.RestoreBackup does both)",
			e.Backup, e.BackupTime.UTC().Format("2006-01-02 15:04:05 UTC"))
	} else {
		b.WriteString("no backup exists beside it; restore it from a backup of your own, or move it aside to start a new, empty state (which forgets everything it recorded)")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the reason.
func (e *CorruptError) Unwrap() error { return e.Reason }

func corrupt(path string, reason error) *CorruptError {
	e := &CorruptError{Path: path, Reason: reason}
	if fi, err := os.Stat(BackupPath(path)); err == nil && fi.Mode().IsRegular() {
		e.Backup, e.BackupTime = BackupPath(path), fi.ModTime()
	}
	return e
}

// isCorruption reports whether err is one of the errors with which bbolt
// itself reports a damaged file.
func isCorruption(err error) bool {
	return errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrInvalidMapping)
}

// guard runs fn, which reads or writes the bbolt file, and turns what a
// damaged file makes bbolt do — panic on a bad page, or fault reading
// memory mapped past the file's end — into a *CorruptError. It is the
// boundary of last resort: preflight and verify find most damage before a
// file is used; this catches what they cannot see. Faults become panics
// only for the calling goroutine, so guard must run in the goroutine that
// touches the file.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(path, fmt.Errorf("reading it failed: %v", r))
		}
	}()
	return fn()
}
