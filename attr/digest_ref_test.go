package attr

// The reflective digest this package used before its digests were
// compiled per type (encode.go), kept word for word as the reference the
// compiled one must match byte for byte: journals hold digests it wrote.

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
)

func refDigest(v any) (string, error) {
	d := refDigesters.Get().(*refDigester)
	defer d.release()
	if err := d.value(reflect.ValueOf(v), 0); err != nil {
		return "", err
	}
	return d.sum(), nil
}

// DigestFields fingerprints named parts, in the order given, as one value:
// what a caller that already walks a struct field by field needs, without
// building a map first. Unlike Digest it is order-dependent.
func refDigestFields(names []string, values []any) (string, error) {
	if len(names) != len(values) {
		return "", fmt.Errorf("attr: DigestFields: %d names, %d values", len(names), len(values))
	}
	d := refDigesters.Get().(*refDigester)
	defer d.release()
	d.str("fields")
	d.u64(uint64(len(names)))
	for i, n := range names {
		d.str(n)
		if err := d.value(reflect.ValueOf(values[i]), 0); err != nil {
			return "", err
		}
	}
	return d.sum(), nil
}

// DigestStructFields digests the fields idx of the struct value v, named
// names: per[k] becomes Digest of field idx[k]'s value and total is
// DigestFields(names, per) — the same strings, in one pass and without
// boxing each field. per must have len(idx) elements.
func refDigestStructFields(v reflect.Value, idx []int, names []string, per []string) (total string, err error) {
	if v.Kind() != reflect.Struct || len(idx) != len(names) || len(per) != len(idx) {
		return "", fmt.Errorf("attr: DigestStructFields: want a struct and as many names and digests as fields, got %v, %d fields, %d names, %d digests", v.Type(), len(idx), len(names), len(per))
	}
	d := refDigesters.Get().(*refDigester)
	defer d.release()
	all := refDigesters.Get().(*refDigester)
	defer all.release()
	all.str("fields")
	all.u64(uint64(len(names)))
	// Every digest's text goes into one string, sliced: one allocation.
	var small [4 * refDigestLen]byte
	text := small[:0]
	if len(idx)+1 > len(small)/refDigestLen {
		text = make([]byte, 0, (len(idx)+1)*refDigestLen)
	}
	for k, i := range idx {
		f := v.Field(i)
		if f.Kind() == reflect.Interface {
			f = f.Elem() // Digest sees the dynamic value, or nil
		}
		d.buf = d.buf[:0]
		if err := d.value(f, 0); err != nil {
			return "", err
		}
		text = d.appendSum(text)
		// As DigestFields writes a string value: its type's name, then it.
		all.str(names[k])
		all.str("string")
		all.bytes(text[k*refDigestLen:])
	}
	text = all.appendSum(text)
	s := string(text)
	for k := range idx {
		per[k] = s[k*refDigestLen : (k+1)*refDigestLen]
	}
	return s[len(idx)*refDigestLen:], nil
}

type refDigester struct {
	buf []byte
	// A few recently used types, checked before the shared cache: a
	// digest visits the same handful of types over and over.
	recentT [8]reflect.Type
	recentI [8]*refTypeInfo
	next    int
}

func (d *refDigester) info(t reflect.Type) *refTypeInfo {
	for k, rt := range d.recentT {
		if rt == t {
			return d.recentI[k]
		}
	}
	ti := refInfoOf(t)
	d.recentT[d.next], d.recentI[d.next] = t, ti
	d.next = (d.next + 1) % len(d.recentT)
	return ti
}

var refDigesters = sync.Pool{New: func() any { return new(refDigester) }}

func (d *refDigester) release() {
	if cap(d.buf) <= 64<<10 {
		d.buf = d.buf[:0]
		refDigesters.Put(d)
	}
}

// refDigestLen is the length of a digest's text: "sha256:" and 64 hex digits.
const refDigestLen = 7 + 64

func (d *refDigester) sum() string {
	var out [refDigestLen]byte
	return string(d.appendSum(out[:0]))
}

// appendSum appends the digest's text of what d holds to b.
func (d *refDigester) appendSum(b []byte) []byte {
	sum := sha256.Sum256(d.buf)
	b = append(b, "sha256:"...)
	return hex.AppendEncode(b, sum[:])
}

// refTypeInfo is what value needs to know about a type, computed once per
// type: reflect.Type.String builds a new string on every call for unnamed
// types (struct{...}, []T, map[K]V), Implements walks method sets, and
// Type.Field allocates.
type refTypeInfo struct {
	name   string
	text   bool     // implements encoding.TextMarshaler
	fields []string // field names, for structs
}

var refTypeInfos sync.Map // reflect.Type → *refTypeInfo

func refInfoOf(t reflect.Type) *refTypeInfo {
	if ti, ok := refTypeInfos.Load(t); ok {
		return ti.(*refTypeInfo)
	}
	ti := &refTypeInfo{name: t.String(), text: t.Implements(textMarshaler)}
	if t.Kind() == reflect.Struct {
		ti.fields = make([]string, t.NumField())
		for i := range ti.fields {
			ti.fields[i] = t.Field(i).Name
		}
	}
	refTypeInfos.Store(t, ti)
	return ti
}

func (d *refDigester) str(s string) {
	d.buf = append(binary.AppendUvarint(d.buf, uint64(len(s))), s...)
}

// bytes writes b exactly as str writes string(b).
func (d *refDigester) bytes(b []byte) {
	d.buf = append(binary.AppendUvarint(d.buf, uint64(len(b))), b...)
}

func (d *refDigester) u64(u uint64) {
	d.buf = binary.BigEndian.AppendUint64(d.buf, u)
}

func (d *refDigester) value(v reflect.Value, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("attr: digest: value nested deeper than %d (a cycle?)", maxDepth)
	}
	if !v.IsValid() {
		d.buf = append(d.buf, 'N')
		return nil
	}
	t := v.Type()
	ti := d.info(t)
	d.str(ti.name)
	if ti.text && v.CanInterface() && (t.Kind() != reflect.Pointer || !v.IsNil()) {
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return fmt.Errorf("attr: digest of %v: %w", t, err)
		}
		d.buf = append(d.buf, 'T')
		d.str(string(text))
		return nil
	}
	switch t.Kind() {
	case reflect.Bool:
		if v.Bool() {
			d.buf = append(d.buf, 1)
		} else {
			d.buf = append(d.buf, 0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.u64(uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		d.u64(v.Uint())
	case reflect.Float32, reflect.Float64:
		d.u64(math.Float64bits(v.Float()))
	case reflect.Complex64, reflect.Complex128:
		c := v.Complex()
		d.u64(math.Float64bits(real(c)))
		d.u64(math.Float64bits(imag(c)))
	case reflect.String:
		d.str(v.String())
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && v.IsNil() {
			d.buf = append(d.buf, 'N')
			return nil
		}
		d.u64(uint64(v.Len()))
		if t.Elem().Kind() == reflect.Uint8 {
			if t.Kind() == reflect.Slice {
				d.str(string(v.Bytes()))
				return nil
			}
		}
		for i := 0; i < v.Len(); i++ {
			if err := d.value(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.IsNil() {
			d.buf = append(d.buf, 'N')
			return nil
		}
		type kv struct{ k, v []byte }
		entries := make([]kv, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			var kd, vd refDigester
			if err := kd.value(it.Key(), depth+1); err != nil {
				return err
			}
			if err := vd.value(it.Value(), depth+1); err != nil {
				return err
			}
			entries = append(entries, kv{kd.buf, vd.buf})
			// kd and vd are not returned to the pool: entries keeps their bytes.
		}
		sort.Slice(entries, func(i, j int) bool { return bytes.Compare(entries[i].k, entries[j].k) < 0 })
		d.u64(uint64(len(entries)))
		for _, e := range entries {
			d.str(string(e.k))
			d.str(string(e.v))
		}
	case reflect.Struct:
		d.u64(uint64(len(ti.fields)))
		for i, name := range ti.fields {
			d.str(name)
			if err := d.value(v.Field(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			d.buf = append(d.buf, 'N')
			return nil
		}
		d.buf = append(d.buf, 'P')
		return d.value(v.Elem(), depth+1)
	default:
		return fmt.Errorf("attr: cannot digest a value of type %v", t)
	}
	return nil
}
