package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	bbolt "go.etcd.io/bbolt"
)

// verifyFile checks an existing state file before it is opened for
// writing: preflight, then a read-only open (which takes bbolt's shared
// lock, so a writer elsewhere makes it ErrLocked) that reads every record,
// then bbolt's consistency check when the file is small enough.
func verifyFile(path string, o Options) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bolt: opening %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = preflight(f, fi.Size())
		if err != nil {
			err = corrupt(path, err)
		}
	}
	f.Close()
	if err != nil {
		return err
	}

	b := &backend{path: path, data: []byte(dataBucket), meta: []byte(metaBucket)}
	var rf *os.File
	bo := &bbolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: o.LockTimeout, OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
		var err error
		rf, err = os.OpenFile(name, flag, mode)
		return rf, err
	}}
	err = guard(path, func() error {
		var err error
		b.db, err = bbolt.Open(path, 0, bo)
		return err
	})
	if err != nil {
		if b.db == nil && rf != nil {
			_ = rf.Close()
		}
		return b.openError(err, o)
	}
	defer func() { _ = guard(path, b.db.Close) }()
	return guard(path, func() error {
		return b.db.View(func(tx *bbolt.Tx) error {
			if err := b.walk(tx); err != nil {
				return err
			}
			if o.CheckLimit < 0 || fi.Size() > o.CheckLimit {
				return nil
			}
			var found []string
			for err := range tx.Check() {
				if len(found) < 3 {
					found = append(found, err.Error())
				}
			}
			if len(found) > 0 {
				return corrupt(path, fmt.Errorf("bbolt's consistency check failed: %s", strings.Join(found, "; ")))
			}
			return nil
		})
	})
}

// walk reads every record of the file: only mason's buckets, every record
// whole, none from after the file's last revision. It touches every page
// a read can reach, so damage there shows now and not in the middle of a
// run. Run it under guard.
func (b *backend) walk(tx *bbolt.Tx) error {
	bad := func(format string, args ...any) error { return corrupt(b.path, fmt.Errorf(format, args...)) }
	err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		if n := string(name); n != dataBucket && n != metaBucket {
			return bad("it holds a bucket %q that mason does not write (is it a mason state file?)", name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	last := int64(-1)
	if m := tx.Bucket(b.meta); m != nil {
		v := m.Get([]byte(revKey))
		switch {
		case len(v) == 8:
			last = int64(binary.BigEndian.Uint64(v))
		case v != nil:
			return bad("its revision record is %d bytes long, not 8", len(v))
		}
	}
	d := tx.Bucket(b.data)
	if d == nil {
		return nil
	}
	var prev []byte
	return d.ForEach(func(k, v []byte) error {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return bad("its keys are out of order (%q after %q)", k, prev)
		}
		prev = append(prev[:0], k...)
		if v == nil {
			return bad("key %q is a bucket, not a record", k)
		}
		rec, err := b.decode(k, v)
		if err != nil {
			return err
		}
		if rec.Rev <= 0 || rec.Rev > last {
			return bad("the record of key %q has revision %d, outside the file's revisions 1 to %d", k, rec.Rev, last)
		}
		return nil
	})
}
