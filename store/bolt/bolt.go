// Package bolt is the embedded default store: one bbolt file on local disk.
//
// Every transaction is one bbolt read-write transaction, fsync'd before it
// returns, so a write that returned nil survives a crash of the process or
// the machine. Group several writes into one [store.Store.Txn] to pay for one
// fsync instead of many. The file is locked while open: a second process
// (or a second Open in the same process) gets an error naming the file and
// who has it open (a [*store.LockedError], matching [ErrLocked]) instead of
// waiting forever.
//
// Leases live in memory: keys written with a lease are deleted when the file
// is next opened, since the process that held the lease is gone.
//
// # Damaged files
//
// A state file damaged on disk (truncated, overwritten in part) is an
// error naming the file, never a crash: every error then matches
// [ErrCorrupt] and is a [*CorruptError] that says what was found and how
// to restore the file. Open checks a file before using it: what bbolt
// trusts blindly (its meta pages, the freelist, the file's length) is
// checked first, then every record is read, then bbolt's own consistency
// check runs on files up to [Options.CheckLimit]. What a check cannot see
// (damage that appears while the file is open) is caught where bbolt
// reads it, and the Store refuses every later call.
//
// # Backups
//
// Beside the file, at [BackupPath] (path + ".backup"), Open keeps a copy of
// the state as it was at the last safe moment: when a file has just been
// checked clean on Open, and when the Store is closed after checking it
// again. The copy is a consistent bbolt snapshot, written to a temporary
// file, synced and renamed into place, so it is whole or absent, never
// half-written. A damaged file's error names the backup; [RestoreBackup]
// puts it in place (keeping the damaged file aside). [Store.Backup] writes
// a snapshot anywhere, at any time. [Options.NoBackup] turns backups off.
//
// While the Store is open, a holder record (path + ".holder") says who has
// it open, for the error a second opener gets.
package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/internal/engine"
)

// The buckets and keys of a state file.
const (
	dataBucket = "mason.data"
	metaBucket = "mason.meta"
	revKey     = "rev"
)

// Store is a store.Store kept in one bbolt file.
type Store struct {
	*store.Portable
	b *backend
}

var _ store.Store = (*Store)(nil)

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another holder of the file to
	// let go before failing. Zero means 100ms.
	LockTimeout time.Duration
	// Mode is the file's permission bits when it is created; zero means 0600.
	Mode os.FileMode
	// Owner names this process in the holder record written beside the
	// file while it is open (see Open); empty means the program's name.
	Owner string
	// NoBackup stops Open and Close from writing the backup beside the
	// file (see the package documentation).
	NoBackup bool
	// CheckLimit is the largest file Open runs bbolt's full consistency
	// check on (it reads every page; a few milliseconds per megabyte).
	// Zero means 64 MiB; negative means never. Every record is read on
	// Open whatever the size.
	CheckLimit int64
}

// ErrLocked is matched by Open's error when the file is open elsewhere: a
// *store.LockedError naming the file and, as far as it is known, who has
// it open (owner, pid, host, since, and whether it is this process). It is
// store.ErrLocked.
var ErrLocked = store.ErrLocked

const defaultCheckLimit = 64 << 20

// Open opens or creates the store file at path. An existing file is
// checked before it is used (see the package documentation): a damaged one
// is a *CorruptError (ErrCorrupt). An empty file is a new, empty state, as
// a missing one is; telling a lost state from a new one is the job of the
// layer that knows what the state should hold (package deploy records the
// deployment's identity in it).
func Open(path string, opts *Options) (*Store, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 100 * time.Millisecond
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.Owner == "" {
		o.Owner = filepath.Base(os.Args[0])
	}
	if o.CheckLimit == 0 {
		o.CheckLimit = defaultCheckLimit
	}
	fi, err := os.Stat(path)
	existed := err == nil
	switch {
	case existed && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("bolt: %s is not a regular file (%v)", path, fi.Mode().Type())
	case existed && fi.Size() > 0:
		if err := verifyFile(path, o); err != nil {
			return nil, err
		}
	}
	b := &backend{path: path, data: []byte(dataBucket), meta: []byte(metaBucket), noBackup: o.NoBackup, checkLimit: o.CheckLimit}
	if err := b.open(o); err != nil {
		return nil, err
	}
	e, err := engine.New(b)
	if err != nil {
		b.closeFile()
		return nil, fmt.Errorf("bolt: %s: %w", path, err)
	}
	if existed && !o.NoBackup {
		// Checked clean just now: the safe moment to keep a copy.
		_ = b.backup()
	}
	return &Store{Portable: store.New(e), b: b}, nil
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.b.path }

// Backup writes a consistent snapshot of the store to a new file at path
// (mode 0600), synced before Backup returns; an existing file there is
// replaced only once the new one is complete. It runs beside other calls.
func (s *Store) Backup(path string) error {
	if err := s.b.failed(); err != nil {
		return err
	}
	return s.b.snapshot(path)
}

// backend is the bbolt file under the engine.
type backend struct {
	path       string
	db         *bbolt.DB
	rev        int64
	data, meta []byte
	noBackup   bool
	checkLimit int64

	broken    atomic.Pointer[CorruptError] // set once damage was seen
	closeOnce sync.Once
	closeErr  error
}

// open opens the file read-write and makes sure it has mason's buckets.
func (b *backend) open(o Options) error {
	var f *os.File
	bo := &bbolt.Options{Timeout: o.LockTimeout, OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, mode)
		return f, err
	}}
	err := guard(b.path, func() error {
		var err error
		b.db, err = bbolt.Open(b.path, o.Mode, bo)
		return err
	})
	if err != nil {
		if b.db == nil && f != nil {
			_ = f.Close() // bbolt panicked holding it
		}
		return b.openError(err, o)
	}
	// At once: a second opener that finds the file locked reads it.
	writeHolder(b.path, o.Owner)
	err = b.guarded(func() error {
		return b.db.Update(func(tx *bbolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(b.data); err != nil {
				return err
			}
			m, err := tx.CreateBucketIfNotExists(b.meta)
			if err != nil {
				return err
			}
			if v := m.Get([]byte(revKey)); len(v) == 8 {
				b.rev = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		b.closeFile()
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("bolt: initializing %s: %w", b.path, err)
	}
	return nil
}

func (b *backend) openError(err error, o Options) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return lockedError(b.path, o.LockTimeout)
	case errors.Is(err, ErrCorrupt):
		return err
	case isCorruption(err):
		return corrupt(b.path, err)
	}
	return fmt.Errorf("bolt: opening %s: %w", b.path, err)
}

// failed returns the damage seen, if any.
func (b *backend) failed() error {
	if e := b.broken.Load(); e != nil {
		return e
	}
	return nil
}

// guarded runs fn under guard, and once fn finds damage, refuses every
// later call with the same error: writing on a damaged file spreads the
// damage.
func (b *backend) guarded(fn func() error) error {
	if err := b.failed(); err != nil {
		return err
	}
	err := guard(b.path, fn)
	var ce *CorruptError
	if errors.As(err, &ce) {
		b.broken.CompareAndSwap(nil, ce)
		return b.failed()
	}
	return err
}

// A record is stored as revision (8 bytes), lease (8 bytes), then the value.
const header = 16

func encode(r engine.Record) []byte {
	buf := make([]byte, header+len(r.Value))
	binary.BigEndian.PutUint64(buf[0:8], uint64(r.Rev))
	binary.BigEndian.PutUint64(buf[8:16], uint64(r.Lease))
	copy(buf[header:], r.Value)
	return buf
}

func (b *backend) decode(key, v []byte) (engine.Record, error) {
	if len(v) < header {
		return engine.Record{}, corrupt(b.path, fmt.Errorf("the record of key %q is %d bytes long, shorter than its header", key, len(v)))
	}
	return engine.Record{
		Rev:   int64(binary.BigEndian.Uint64(v[0:8])),
		Lease: store.LeaseID(binary.BigEndian.Uint64(v[8:16])),
		Value: append([]byte{}, v[header:]...),
	}, nil
}

// fillPercent is how full Commit splits the data bucket's pages.
const fillPercent = 0.9

func (b *backend) bucket(tx *bbolt.Tx) (*bbolt.Bucket, error) {
	bk := tx.Bucket(b.data)
	if bk == nil {
		return nil, corrupt(b.path, fmt.Errorf("its %s bucket is gone", dataBucket))
	}
	return bk, nil
}

func (b *backend) Get(key string) (rec engine.Record, ok bool, err error) {
	err = b.guarded(func() error {
		return b.db.View(func(tx *bbolt.Tx) error {
			bk, err := b.bucket(tx)
			if err != nil {
				return err
			}
			v := bk.Get([]byte(key))
			if v == nil {
				return nil
			}
			ok = true
			rec, err = b.decode([]byte(key), v)
			return err
		})
	})
	return rec, ok, err
}

func (b *backend) List(prefix string) ([]store.Entry, error) {
	var out []store.Entry
	err := b.guarded(func() error {
		return b.db.View(func(tx *bbolt.Tx) error {
			bk, err := b.bucket(tx)
			if err != nil {
				return err
			}
			c := bk.Cursor()
			p := []byte(prefix)
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				rec, err := b.decode(k, v)
				if err != nil {
					return err
				}
				out = append(out, store.Entry{Key: string(k), Value: rec.Value, Revision: rec.Rev, Lease: rec.Lease})
			}
			return nil
		})
	})
	return out, err
}

func (b *backend) Commit(rev int64, writes []engine.Write) error {
	return b.guarded(func() error {
		return b.db.Update(func(tx *bbolt.Tx) error {
			d, err := b.bucket(tx)
			if err != nil {
				return err
			}
			// Split pages fuller than bbolt's default half: keys are
			// written again far more often than new ones come (a journal
			// rewrites each node-role's record), so pages rarely split
			// again, and the file is about half as large.
			d.FillPercent = fillPercent
			for _, w := range writes {
				if w.Delete {
					err = d.Delete([]byte(w.Key))
				} else {
					err = d.Put([]byte(w.Key), encode(w.Rec))
				}
				if err != nil {
					return fmt.Errorf("bolt: writing %q: %w", w.Key, err)
				}
			}
			var rv [8]byte
			binary.BigEndian.PutUint64(rv[:], uint64(rev))
			return tx.Bucket(b.meta).Put([]byte(revKey), rv[:])
		})
	})
}

func (b *backend) Rev() int64 { return b.rev }

// Close checks the file once more and, if it is clean, keeps it as the
// backup, then closes it. Close may be called more than once.
func (b *backend) Close() error {
	b.closeOnce.Do(func() {
		if !b.noBackup && b.failed() == nil {
			if err := b.guarded(func() error { return b.db.View(func(tx *bbolt.Tx) error { return b.walk(tx) }) }); err == nil {
				_ = b.backup()
			}
		}
		b.closeErr = b.closeFile()
	})
	return b.closeErr
}

// closeFile removes the holder record (first: once the file is closed, it
// may be the next opener's) and closes the file.
func (b *backend) closeFile() error {
	removeHolder(b.path)
	return guard(b.path, b.db.Close)
}
