package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
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

// corruptErrors are the errors with which bbolt itself reports a damaged
// file.
var corruptErrors = []error{bolterrors.ErrInvalid, bolterrors.ErrChecksum, bolterrors.ErrVersionMismatch, bolterrors.ErrInvalidMapping}

func isCorruption(err error) bool {
	for _, c := range corruptErrors {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
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

// The layout of a bbolt file that preflight reads (go.etcd.io/bbolt,
// internal/common: page.go, meta.go; stable since boltdb): every page
// starts with a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32), pages 0 and 1 are meta pages, each holding a meta
// record right after its header, checksummed with FNV-64a. Integers are in
// the machine's byte order, which is little-endian on every platform mason
// runs on.
const (
	pageHeader   = 16
	metaSize     = 64 // magic, version, pageSize, flags, root, sequence, freelist, pgid, txid, checksum
	boltMagic    = 0xED0CDAED
	boltVersion  = 2
	freelistFlag = 0x10
	metaFlag     = 0x04
	branchFlag   = 0x01
	leafFlag     = 0x02
	noFreelist   = ^uint64(0)
)

type meta struct {
	pageSize                   uint64
	root, freelist, pgid, txid uint64
}

func parseMeta(b []byte) (meta, bool) {
	if len(b) < pageHeader+metaSize {
		return meta{}, false
	}
	m := b[pageHeader : pageHeader+metaSize]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return meta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return meta{}, false
	}
	ps := uint64(le.Uint32(m[8:]))
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return meta{}, false
	}
	return meta{pageSize: ps, root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// preflight checks what bbolt trusts when it opens a file, before bbolt
// sees it: a valid meta page, a file as long as the meta says, and a root
// page and freelist that are what the meta says they are. bbolt panics
// (or faults on memory past the end of a truncated file) on each of
// these; preflight makes them errors.
func preflight(f *os.File, size int64) error {
	if size < 2*pageHeader+2*metaSize {
		return fmt.Errorf("the file is %d bytes long, too short for a bbolt file (it was truncated)", size)
	}
	head := make([]byte, pageHeader+metaSize)
	if _, err := f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("reading its first page: %w", err)
	}
	m0, ok0 := parseMeta(head)
	ps := m0.pageSize
	if !ok0 {
		ps = uint64(os.Getpagesize())
	}
	var m1 meta
	ok1 := false
	if int64(ps)+int64(len(head)) <= size {
		if _, err := f.ReadAt(head, int64(ps)); err == nil {
			m1, ok1 = parseMeta(head)
		}
	}
	// Both meta pages' headers must be whole, valid meta or not: bbolt's
	// check asserts on them.
	for id := range uint64(2) {
		if int64(id*ps+pageHeader) > size {
			return fmt.Errorf("the file is %d bytes long, too short for its second meta page (it was truncated)", size)
		}
		h := make([]byte, pageHeader)
		if _, err := f.ReadAt(h, int64(id*ps)); err != nil {
			return fmt.Errorf("reading meta page %d: %w", id, err)
		}
		if got, flags := binary.LittleEndian.Uint64(h), binary.LittleEndian.Uint16(h[8:]); got != id || flags != metaFlag {
			return fmt.Errorf("the header of meta page %d is damaged (it says page %d, flags %#x)", id, got, flags)
		}
	}
	m := m0
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case !ok0 && !ok1:
		return errors.New("neither of its two meta pages is valid (it is not a bbolt file, or both were overwritten)")
	}
	if need := m.pgid * m.pageSize; uint64(size) < need {
		return fmt.Errorf("the file is %d bytes long but its pages reach to byte %d (it was truncated)", size, need)
	}
	if m.freelist == noFreelist {
		return errors.New("its freelist is not recorded (mason always records it)")
	}
	if m.root < 2 || m.root >= m.pgid || m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("its meta page points outside the file (root page %d, freelist page %d, %d pages)", m.root, m.freelist, m.pgid)
	}
	hdr := make([]byte, pageHeader)
	page := func(id uint64) (flags uint16, count uint16, overflow uint32, err error) {
		if _, err := f.ReadAt(hdr, int64(id*m.pageSize)); err != nil {
			return 0, 0, 0, fmt.Errorf("reading page %d: %w", id, err)
		}
		le := binary.LittleEndian
		if got := le.Uint64(hdr[0:]); got != id {
			return 0, 0, 0, fmt.Errorf("page %d says it is page %d", id, got)
		}
		return le.Uint16(hdr[8:]), le.Uint16(hdr[10:]), le.Uint32(hdr[12:]), nil
	}
	if flags, _, _, err := page(m.root); err != nil {
		return err
	} else if flags != branchFlag && flags != leafFlag {
		return fmt.Errorf("its root page %d is not a branch or leaf page (flags %#x)", m.root, flags)
	}
	flags, count, overflow, err := page(m.freelist)
	if err != nil {
		return err
	}
	if flags != freelistFlag {
		return fmt.Errorf("its freelist page %d is not a freelist page (flags %#x)", m.freelist, flags)
	}
	span := (uint64(overflow) + 1) * m.pageSize
	if m.freelist+uint64(overflow) >= m.pgid {
		return fmt.Errorf("its freelist (page %d, %d overflow pages) runs past the last page, %d", m.freelist, overflow, m.pgid-1)
	}
	ids := make([]byte, span-pageHeader)
	if _, err := f.ReadAt(ids, int64(m.freelist*m.pageSize+pageHeader)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the freelist: %w", err)
	}
	n, first := uint64(count), uint64(0)
	if count == 0xFFFF { // the real count is the first element
		n, first = binary.LittleEndian.Uint64(ids), 1
	}
	if (first+n)*8 > uint64(len(ids)) {
		return fmt.Errorf("its freelist claims %d pages, more than its %d bytes hold", n, len(ids))
	}
	for i := first; i < first+n; i++ {
		if id := binary.LittleEndian.Uint64(ids[i*8:]); id < 2 || id >= m.pgid {
			return fmt.Errorf("its freelist names page %d, outside the file's %d pages", id, m.pgid)
		}
	}
	return nil
}
