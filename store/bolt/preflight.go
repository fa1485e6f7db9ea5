package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

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
	free := make(map[uint64]bool, n)
	for i := first; i < first+n; i++ {
		id := binary.LittleEndian.Uint64(ids[i*8:])
		if id < 2 || id >= m.pgid {
			return fmt.Errorf("its freelist names page %d, outside the file's %d pages", id, m.pgid)
		}
		free[id] = true
	}
	t := &tree{f: f, m: m, free: free, seen: map[uint64]bool{}}
	_, err = t.walk(m.root, 0)
	return err
}

// The page elements preflight's tree walk reads (bbolt's
// branchPageElement and leafPageElement): a branch element is pos, ksize
// (uint32) and the child's pgid (uint64); a leaf element is flags, pos,
// ksize, vsize (uint32). pos counts from the element itself. A leaf
// element with flag 0x01 is a sub-bucket: its value is the bucket's root
// pgid and sequence (uint64 each), then, when the root is 0, the bucket's
// own leaf page inline.
const (
	elemSize   = 16
	bucketFlag = 0x01
	bucketHdr  = 16
	maxDepth   = 64
)

// tree walks every page of every bucket the way bbolt's consistency check
// does, reading the file, so that everything the check dereferences is
// known to lie inside its page before the check runs (it runs in a
// goroutine of bbolt's own, where a panic cannot be caught). It also
// checks what bbolt's writes rely on and its check does not: every page's
// keys in order, and every branch key equal to the first key of the page
// it points to (bbolt finds a child's entry in its parent by that key when
// it writes the child back; a damaged one makes it add a second entry, and
// the tree then holds pages twice).
type tree struct {
	f    *os.File
	m    meta
	free map[uint64]bool
	seen map[uint64]bool
}

// walk checks the page id and everything under it, and returns its first
// key.
func (t *tree) walk(id uint64, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("its pages nest deeper than %d levels (a loop?)", maxDepth)
	}
	if id < 2 || id >= t.m.pgid {
		return nil, fmt.Errorf("a page points to page %d, outside the file's %d pages", id, t.m.pgid)
	}
	if t.seen[id] {
		return nil, fmt.Errorf("page %d is reached twice", id)
	}
	if t.free[id] {
		return nil, fmt.Errorf("page %d is in use and in the freelist", id)
	}
	t.seen[id] = true
	hdr := make([]byte, pageHeader)
	if _, err := t.f.ReadAt(hdr, int64(id*t.m.pageSize)); err != nil {
		return nil, fmt.Errorf("reading page %d: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= t.m.pgid {
		return nil, fmt.Errorf("page %d and its %d overflow pages run past the last page, %d", id, overflow, t.m.pgid-1)
	}
	for o := id + 1; o <= id+overflow; o++ {
		if t.seen[o] || t.free[o] {
			return nil, fmt.Errorf("overflow page %d of page %d is also used elsewhere or free", o, id)
		}
		t.seen[o] = true
	}
	p := make([]byte, (overflow+1)*t.m.pageSize)
	if _, err := t.f.ReadAt(p, int64(id*t.m.pageSize)); err != nil {
		return nil, fmt.Errorf("reading page %d: %w", id, err)
	}
	return t.page(id, p, depth)
}

// page checks one branch or leaf page held in p (header included) and
// returns its first key.
func (t *tree) page(id uint64, p []byte, depth int) ([]byte, error) {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if pageHeader+count*elemSize > len(p) {
		return nil, fmt.Errorf("page %d claims %d elements, more than it holds", id, count)
	}
	var first, prev []byte
	inOrder := func(i int, k []byte) error {
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("the keys of page %d are out of order at element %d", id, i)
		}
		if i == 0 {
			first = k
		}
		prev = k
		return nil
	}
	switch flags {
	case branchFlag:
		if count == 0 {
			return nil, fmt.Errorf("branch page %d is empty", id)
		}
		for i := range count {
			e := pageHeader + i*elemSize
			pos, ksize := int(le.Uint32(p[e:])), int(le.Uint32(p[e+4:]))
			if e+pos+ksize > len(p) || e+pos+ksize < e {
				return nil, fmt.Errorf("key %d of branch page %d lies outside the page", i, id)
			}
			k := p[e+pos : e+pos+ksize]
			if err := inOrder(i, k); err != nil {
				return nil, err
			}
			child := le.Uint64(p[e+8:])
			cf, err := t.walk(child, depth+1)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(k, cf) {
				return nil, fmt.Errorf("key %d of branch page %d is not the first key of the page it points to, %d", i, id, child)
			}
		}
	case leafFlag:
		for i := range count {
			e := pageHeader + i*elemSize
			eflags, pos, ksize, vsize := le.Uint32(p[e:]), int(le.Uint32(p[e+4:])), int(le.Uint32(p[e+8:])), int(le.Uint32(p[e+12:]))
			end := e + pos + ksize + vsize
			if end > len(p) || end < e {
				return nil, fmt.Errorf("entry %d of leaf page %d lies outside the page", i, id)
			}
			if err := inOrder(i, p[e+pos:e+pos+ksize]); err != nil {
				return nil, err
			}
			if eflags&bucketFlag == 0 {
				continue
			}
			v := p[e+pos+ksize : end]
			if len(v) < bucketHdr {
				return nil, fmt.Errorf("bucket entry %d of page %d is too short", i, id)
			}
			if root := le.Uint64(v); root != 0 {
				if _, err := t.walk(root, depth+1); err != nil {
					return nil, err
				}
				continue
			}
			inline := v[bucketHdr:]
			if len(inline) < pageHeader || le.Uint16(inline[8:]) != leafFlag {
				return nil, fmt.Errorf("the inline bucket of entry %d of page %d is not a leaf page", i, id)
			}
			if _, err := t.page(id, inline, depth+1); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("page %d is neither a branch nor a leaf page (flags %#x)", id, flags)
	}
	return first, nil
}
