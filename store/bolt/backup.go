package bolt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// BackupPath returns where the backup of the state file at path is kept.
func BackupPath(path string) string { return path + ".backup" }

func (b *backend) backup() error { return b.snapshot(BackupPath(b.path)) }

// snapshot writes a consistent copy of the file to dst, atomically: a
// temporary file, synced, renamed over dst, and the directory synced.
func (b *backend) snapshot(dst string) error {
	return writeAtomic(dst, func(f *os.File) error {
		return b.guarded(func() error {
			return b.db.View(func(tx *bbolt.Tx) error {
				_, err := tx.WriteTo(f)
				return err
			})
		})
	})
}

func writeAtomic(dst string, fill func(*os.File) error) error {
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("bolt: writing %s: %w", dst, err)
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("bolt: writing %s: %w", dst, err)
	}
	syncDir(filepath.Dir(dst))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// RestoreBackup puts the backup kept beside the state file at path
// (BackupPath) in its place, after checking that the backup is sound. The
// file it replaces, if any, is kept aside and its new name returned; the
// backup stays where it was. It fails with an error matching ErrLocked
// while a Store has the file open.
func RestoreBackup(path string) (aside string, err error) {
	bp := BackupPath(path)
	if _, err := os.Stat(bp); err != nil {
		return "", fmt.Errorf("bolt: no backup of %s to restore: %w", path, err)
	}
	if err := verifyFile(bp, Options{LockTimeout: 100 * time.Millisecond, CheckLimit: defaultCheckLimit}); err != nil {
		return "", fmt.Errorf("bolt: the backup %s cannot be restored: %w", bp, err)
	}
	// Hold the lock bbolt takes (flock on the file) while the files move,
	// so no Store has the old file open.
	if f, err := os.OpenFile(path, os.O_RDONLY, 0); err == nil {
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return "", lockedError(path, 0)
			}
			return "", fmt.Errorf("bolt: locking %s: %w", path, err)
		}
		aside = fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405.000Z"))
		if err := os.Rename(path, aside); err != nil {
			return "", fmt.Errorf("bolt: moving %s aside: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("bolt: opening %s: %w", path, err)
	}
	src, err := os.Open(bp)
	if err != nil {
		return aside, fmt.Errorf("bolt: reading the backup %s: %w", bp, err)
	}
	defer src.Close()
	if err := writeAtomic(path, func(f *os.File) error { _, err := io.Copy(f, src); return err }); err != nil {
		return aside, err
	}
	return aside, nil
}
