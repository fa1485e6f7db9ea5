package attr

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"reflect"
	"sync"
	"unsafe"
)

// Digest returns a stable fingerprint of v: "sha256:" and 64 hex digits.
//
// It is order-independent (map entries are sorted by their encoding), and
// type-aware (the int 1, the int64 1 and the string "1" differ, as do two
// named types with the same content). Structs count every field, exported
// or not, by name; pointers count what they point to; types that implement
// encoding.TextMarshaler (time.Time, netip.Addr) count their text. Secrets
// count too — a changed token must re-run the role that uses it — so a
// plain digest of a low-entropy secret lets anyone test guesses against it:
// the graph keeps none, it keys the digests of secret inputs (HMAC under a
// per-deployment key, package seal) before they are stored. Functions and
// channels cannot be digested.
func Digest(v any) (string, error) {
	d := digesters.Get().(*digester)
	defer d.release()
	if err := d.anyValue(v); err != nil {
		return "", err
	}
	return d.sum(), nil
}

// DigestFields fingerprints named parts, in the order given, as one value:
// what a caller that already walks a struct field by field needs, without
// building a map first. Unlike Digest it is order-dependent.
func DigestFields(names []string, values []any) (string, error) {
	if len(names) != len(values) {
		return "", fmt.Errorf("attr: DigestFields: %d names, %d values", len(names), len(values))
	}
	d := digesters.Get().(*digester)
	defer d.release()
	d.str("fields")
	d.u64(uint64(len(names)))
	for i, n := range names {
		d.str(n)
		if err := d.anyValue(values[i]); err != nil {
			return "", err
		}
	}
	return d.sum(), nil
}

// DigestStructFields digests the fields idx of the struct value v, named
// names: per[k] becomes Digest of field idx[k]'s value and total is
// DigestFields(names, per) — the same strings, in one pass and without
// boxing each field. per must have len(idx) elements.
func DigestStructFields(v reflect.Value, idx []int, names []string, per []string) (total string, err error) {
	if v.Kind() != reflect.Struct || len(idx) != len(names) || len(per) != len(idx) {
		return "", fmt.Errorf("attr: DigestStructFields: want a struct and as many names and digests as fields, got %v, %d fields, %d names, %d digests", v.Type(), len(idx), len(names), len(per))
	}
	d := digesters.Get().(*digester)
	defer d.release()
	e := d.encoder(v.Type())
	for _, i := range idx {
		if i < 0 || i >= len(e.fields) {
			return "", fmt.Errorf("attr: DigestStructFields: %v has no field %d", v.Type(), i)
		}
	}
	p, ro := addrOf(v, e)
	return d.structFields(e, p, ro, idx, names, per)
}

// structFields is DigestStructFields of the struct of encoder e at p.
func (d *digester) structFields(e *encoder, p unsafe.Pointer, ro access, idx []int, names []string, per []string) (string, error) {
	// The total is the digest of DigestFields(names, per): "fields", the
	// count, then each name and digest as a string value. Every digest's
	// text goes into one string, sliced: one allocation.
	var small [4 * digestLen]byte
	text := small[:0]
	if len(idx)+1 > len(small)/digestLen {
		text = make([]byte, 0, (len(idx)+1)*digestLen)
	}
	for _, i := range idx {
		f := &e.fields[i]
		d.reset()
		var err error
		if fe, fp := f.enc, unsafe.Add(p, f.off); fe.kind == reflect.Interface {
			// Digest sees the dynamic value, or nil.
			if de, dp := d.dynamic(fe, fp); de == nil {
				d.buf = append(d.buf, 'N')
			} else {
				err = d.value(de, dp, 0, ro.field(f).inner())
			}
		} else {
			err = d.value(fe, fp, 0, ro.field(f))
		}
		if err != nil {
			return "", err
		}
		text = d.appendSum(text)
	}
	d.reset()
	d.str("fields")
	d.u64(uint64(len(names)))
	for k := range idx {
		d.str(names[k])
		d.str("string")
		d.bytes(text[k*digestLen : (k+1)*digestLen])
	}
	text = d.appendSum(text)
	s := string(text)
	for k := range idx {
		per[k] = s[k*digestLen : (k+1)*digestLen]
	}
	return s[len(idx)*digestLen:], nil
}

// addrOf returns where struct value v (of encoder e's type) is, and
// the access it was reached with.
func addrOf(v reflect.Value, e *encoder) (unsafe.Pointer, access) {
	ro := accessOf(v)
	switch {
	case v.CanAddr():
		return v.Addr().UnsafePointer(), ro
	case ro == accessible:
		// Not addressable: an interface holds it, and its data word
		// points to it (no copy is made), or is it.
		x := v.Interface()
		return dataOf(e, &x), ro
	}
	// Neither addressable nor exported, so neither Addr nor Interface
	// may be called: read where the reflect.Value keeps the value.
	ptr := reflect.ValueOf(v).FieldByName("ptr").UnsafePointer()
	if e.direct {
		slot := new(unsafe.Pointer)
		*slot = ptr
		return unsafe.Pointer(slot), ro
	}
	return ptr, ro
}

// accessOf tells the access struct value v was reached with: whether
// its exported fields are accessible tells an embedded unexported field
// from a hidden one. Where no exported field is reached through embedded
// ones, the two cannot be told apart, nor do they differ.
func accessOf(v reflect.Value) access {
	if v.CanInterface() {
		return accessible
	}
	if exportedAccessible(v, 0) {
		return viaEmbedded
	}
	return hidden
}

// exportedAccessible reports whether the first exported field of struct
// v, looking through embedded structs and pointers to them, is
// accessible.
func exportedAccessible(v reflect.Value, depth int) bool {
	if depth > maxDepth {
		return false
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() {
			return v.Field(i).CanInterface()
		}
		if !f.Anonymous {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Pointer && !fv.IsNil() {
			fv = fv.Elem()
		}
		if fv.Kind() == reflect.Struct && exportedAccessible(fv, depth+1) {
			return true
		}
	}
	return false
}

// dataOf returns where the value *x holds is; its type's encoder is e.
func dataOf(e *encoder, x *any) unsafe.Pointer {
	data := (*eface)(unsafe.Pointer(x)).data
	if !e.direct {
		return data
	}
	// The data word is the value: give it an address.
	slot := new(unsafe.Pointer)
	*slot = data
	return unsafe.Pointer(slot)
}

// anyValue writes the encoding of x, as the dynamic value it holds.
func (d *digester) anyValue(x any) error {
	if x == nil {
		d.buf = append(d.buf, 'N')
		return nil
	}
	if s, ok := x.(string); ok {
		d.str("string")
		d.str(s)
		return nil
	}
	e := d.encoder(reflect.TypeOf(x))
	if e.kind == reflect.Pointer && !e.text {
		// The commonest pointer-shaped value, without giving it an
		// address.
		d.buf = append(d.buf, e.head...)
		q := (*eface)(unsafe.Pointer(&x)).data
		if q == nil {
			d.buf = append(d.buf, 'N')
			return nil
		}
		d.buf = append(d.buf, 'P')
		return d.value(e.elem, q, 1, accessible)
	}
	return d.value(e, dataOf(e, &x), 0, accessible)
}

// A digester writes an encoding and hashes it. Small encodings stay in
// buf and are hashed at once; past spillAt bytes, buf is written to h as
// it fills, so a large value needs no large buffer.
type digester struct {
	buf     []byte
	h       hash.Hash // nil until an encoding spills
	spilled bool      // buf's earlier bytes are in h
	maps    int       // map entries being collected: buf is a scratch buffer
	free    [][]byte  // scratch buffers for map entries
	// A few recently used types, checked before the shared cache: a
	// digest visits the same handful of types over and over.
	recentT [8]reflect.Type
	recentE [8]*encoder
	next    int
}

func (d *digester) encoder(t reflect.Type) *encoder {
	for k, rt := range d.recentT {
		if rt == t {
			return d.recentE[k]
		}
	}
	e := encoderOf(t)
	d.recentT[d.next], d.recentE[d.next] = t, e
	d.next = (d.next + 1) % len(d.recentT)
	return e
}

var digesters = sync.Pool{New: func() any { return new(digester) }}

// spillAt is how much of an encoding buf holds before it is hashed.
const spillAt = 16 << 10

func (d *digester) release() {
	d.reset()
	if cap(d.buf) <= 4*spillAt {
		digesters.Put(d)
	}
}

// reset starts a new encoding.
func (d *digester) reset() {
	d.buf = d.buf[:0]
	if d.spilled {
		d.h.Reset()
		d.spilled = false
	}
}

// spill hashes what buf holds once it is large, unless map entries are
// being collected.
func (d *digester) spill() {
	if len(d.buf) >= spillAt && d.maps == 0 {
		d.flush()
	}
}

// flush writes buf to the hash.
func (d *digester) flush() {
	if d.h == nil {
		d.h = sha256.New()
	}
	d.h.Write(d.buf)
	d.buf = d.buf[:0]
	d.spilled = true
}

// scratch returns an empty buffer to collect map entries in.
func (d *digester) scratch() []byte {
	if n := len(d.free); n > 0 {
		b := d.free[n-1]
		d.free = d.free[:n-1]
		return b[:0]
	}
	return nil
}

func (d *digester) putScratch(b []byte) {
	if cap(b) <= 4*spillAt {
		d.free = append(d.free, b)
	}
}

// digestLen is the length of a digest's text: "sha256:" and 64 hex digits.
const digestLen = 7 + 64

func (d *digester) sum() string {
	var out [digestLen]byte
	return string(d.appendSum(out[:0]))
}

// appendSum appends the digest's text of the encoding d holds to b.
func (d *digester) appendSum(b []byte) []byte {
	if d.spilled {
		return d.appendSpilledSum(b)
	}
	sum := sha256.Sum256(d.buf)
	return appendText(b, &sum)
}

// appendText appends the digest's text of sum: "sha256:" and 64 hex
// digits, eight at a time.
func appendText(b []byte, sum *[sha256.Size]byte) []byte {
	n := len(b)
	b = append(b, "sha256:0123456789012345678901234567890123456789012345678901234567890123"...)
	out := (*[2 * sha256.Size]byte)(b[n+7:])
	for i := range sha256.Size / 4 {
		// Four bytes b0..b3 to 16-bit lanes, b0 highest; then each lane's
		// high nibble to its upper byte and the low one to its lower.
		x := uint64(binary.BigEndian.Uint32(sum[4*i:]))
		x = (x | x<<16) & 0x0000ffff0000ffff
		x = (x | x<<8) & 0x00ff00ff00ff00ff
		x = (x<<4 | x) & 0x0f0f0f0f0f0f0f0f
		// Each nibble n to '0'+n, or 'a'+n-10 when n > 9 (n+6 > 15).
		x += 0x3030303030303030 + ((x+0x0606060606060606)>>4&0x0101010101010101)*('a'-'0'-10)
		binary.BigEndian.PutUint64(out[8*i:], x)
	}
	return b
}

// appendSpilledSum is appendSum of an encoding partly written to d.h.
// (Apart, because the hash's Sum makes its argument escape.)
func (d *digester) appendSpilledSum(b []byte) []byte {
	d.h.Write(d.buf)
	return appendText(b, (*[sha256.Size]byte)(d.h.Sum(nil)))
}

const maxDepth = 64

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

func (d *digester) str(s string) {
	d.buf = append(binary.AppendUvarint(d.buf, uint64(len(s))), s...)
}

// long is str for a string that may be large: one that would fill buf
// goes to the hash as it is, when it can.
func (d *digester) long(s string) {
	if len(s) < spillAt || d.maps > 0 {
		d.str(s)
		return
	}
	d.buf = binary.AppendUvarint(d.buf, uint64(len(s)))
	d.flush()
	d.h.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// bytes writes b exactly as str writes string(b).
func (d *digester) bytes(b []byte) {
	d.buf = append(binary.AppendUvarint(d.buf, uint64(len(b))), b...)
}

func (d *digester) u64(u uint64) {
	d.buf = binary.BigEndian.AppendUint64(d.buf, u)
}
