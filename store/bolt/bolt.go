// Package bolt is the embedded default store: one bbolt file on local disk.
//
// Every transaction is one bbolt read-write transaction, fsync'd before it
// returns, so a write that returned nil survives a crash of the process or
// the machine. Group several writes into one [store.Store.Txn] to pay for one
// fsync instead of many. The file is locked while open: a second process
// (or a second Open in the same process) gets an error naming the file
// instead of waiting forever.
//
// Leases live in memory: keys written with a lease are deleted when the file
// is next opened, since the process that held the lease is gone.
package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/internal/engine"
)

var (
	dataBucket = []byte("mason.data")
	metaBucket = []byte("mason.meta")
	revKey     = []byte("rev")
)

// Store is a store.Store kept in one bbolt file.
type Store struct {
	*store.Portable
	path      string
	closeOnce sync.Once
	closeErr  error
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
}

// ErrLocked is matched by Open's error when the file is open elsewhere: a
// *store.LockedError naming the file and, as far as it is known, who has
// it open (owner, pid, host, since, and whether it is this process). It is
// store.ErrLocked.
var ErrLocked = store.ErrLocked

// Open opens or creates the store file at path.
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
	db, err := bbolt.Open(path, o.Mode, &bbolt.Options{Timeout: o.LockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, lockedError(path, o.LockTimeout)
		}
		return nil, fmt.Errorf("bolt: opening %s: %w", path, err)
	}
	writeHolder(path, o.Owner)
	b := &backend{db: db}
	if err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(dataBucket); err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := m.Get(revKey); len(v) == 8 {
			b.rev = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: initializing %s: %w", path, err)
	}
	e, err := engine.New(b)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: %s: %w", path, err)
	}
	return &Store{Portable: store.New(e), path: path}, nil
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close closes the store and removes its holder record.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The record goes first: once the file is closed, it may be the
		// next opener's.
		removeHolder(s.path)
		s.closeErr = s.Portable.Close()
	})
	return s.closeErr
}

type backend struct {
	db  *bbolt.DB
	rev int64
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

func decode(key, v []byte) (engine.Record, error) {
	if len(v) < header {
		return engine.Record{}, fmt.Errorf("bolt: corrupt record for key %q (%d bytes)", key, len(v))
	}
	return engine.Record{
		Rev:   int64(binary.BigEndian.Uint64(v[0:8])),
		Lease: store.LeaseID(binary.BigEndian.Uint64(v[8:16])),
		Value: append([]byte{}, v[header:]...),
	}, nil
}

func (b *backend) Get(key string) (rec engine.Record, ok bool, err error) {
	err = b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(dataBucket).Get([]byte(key))
		if v == nil {
			return nil
		}
		ok = true
		rec, err = decode([]byte(key), v)
		return err
	})
	return rec, ok, err
}

func (b *backend) List(prefix string) ([]store.Entry, error) {
	var out []store.Entry
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(dataBucket).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			rec, err := decode(k, v)
			if err != nil {
				return err
			}
			out = append(out, store.Entry{Key: string(k), Value: rec.Value, Revision: rec.Rev, Lease: rec.Lease})
		}
		return nil
	})
	return out, err
}

func (b *backend) Commit(rev int64, writes []engine.Write) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		d := tx.Bucket(dataBucket)
		for _, w := range writes {
			var err error
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
		return tx.Bucket(metaBucket).Put(revKey, rv[:])
	})
}

func (b *backend) Rev() int64   { return b.rev }
func (b *backend) Close() error { return b.db.Close() }
