package attr

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"unsafe"
)

// An encoder writes the digest's encoding of the values of one type, by
// reading their memory: what a walk with reflect.Value would find, without
// a reflect.Value per field or element, and with the type's name and the
// struct's field names encoded once, when the encoder is compiled.
//
// The encoding of a value is its type's name (head), then:
//   - bool: one byte, 0 or 1; integers, floats: 8 bytes, big-endian (the
//     value as an int64 or uint64, floats as float64 bits); complex: two
//     floats
//   - string: its length as a uvarint, then its bytes
//   - slice: 'N' when nil, else the length (8 bytes), then each element;
//     a slice of bytes as one string
//   - array: the length, then each element
//   - map: 'N' when nil, else the count, then each entry's key and
//     value encodings, each as a string, sorted by the key's
//   - struct: the number of fields, then each field's name (a string)
//     and value, unexported fields included
//   - pointer, interface: 'N' when nil, else 'P' and the value it holds
//   - a type implementing encoding.TextMarshaler, reached without passing
//     an unexported field: 'T' and its text as a string
//
// Values nested deeper than maxDepth (a cycle), functions, channels and
// unsafe pointers cannot be digested.
type encoder struct {
	t      reflect.Type
	kind   reflect.Kind
	head   []byte // the type's name as the encoding writes it
	text   bool   // t implements encoding.TextMarshaler
	direct bool   // a t is kept in an interface's data word itself
	size   uintptr
	// tw and ptw are the type words of t and of *t: what an interface
	// value holding a t (a *t) points to, to call MarshalText.
	tw, ptw unsafe.Pointer
	elem    *encoder // of a pointer's, slice's or array's elements; a map's values
	key     *encoder // of a map's keys
	n       int      // an array's length
	fields  []encField
	count   [8]byte // a struct's number of fields, an array's length, encoded
}

type encField struct {
	off uintptr
	// prefix is what precedes the field's value: its name, then its
	// type's name (every value starts with it).
	prefix []byte
	enc    *encoder
	ro     access // what being unexported adds to the struct's access
}

// access says whether a value was reached through unexported fields,
// as reflect tracks it: such values' TextMarshaler methods cannot be
// called, and so are not. A field of an embedded unexported struct, or
// of the struct an embedded unexported pointer points to, is accessible
// again when it is exported itself, as Go promotes it; anything else
// reached from an inaccessible value is inaccessible.
type access uint8

const (
	accessible  access = 0
	viaEmbedded access = 1 // an embedded unexported field (or what its pointer points to)
	hidden      access = 2 // reached through an unexported field
)

// field is the access of a field of a struct reached with access a.
func (a access) field(f *encField) access { return a&hidden | f.ro }

// inner is the access of what a value reached with access a holds: its
// elements, entries, or an interface's value.
func (a access) inner() access {
	if a != accessible {
		return hidden
	}
	return accessible
}

// eface is the layout of an interface value.
type eface struct{ typ, data unsafe.Pointer }

// packEface makes the interface value of type word tw and data word data.
func packEface(tw, data unsafe.Pointer) any {
	var x any
	e := (*eface)(unsafe.Pointer(&x))
	e.typ, e.data = tw, data
	return x
}

func typeWord(t reflect.Type) unsafe.Pointer {
	z := reflect.Zero(t).Interface()
	return (*eface)(unsafe.Pointer(&z)).typ
}

var (
	encoders  sync.Map   // reflect.Type → *encoder
	compiling sync.Mutex // one compilation at a time, so a recursive type gets one encoder graph
)

// encoderOf returns the encoder of t, compiling it the first time.
func encoderOf(t reflect.Type) *encoder {
	if e, ok := encoders.Load(t); ok {
		return e.(*encoder)
	}
	compiling.Lock()
	defer compiling.Unlock()
	building := map[reflect.Type]*encoder{}
	e := compile(t, building)
	for t, e := range building {
		encoders.Store(t, e)
	}
	return e
}

func compile(t reflect.Type, building map[reflect.Type]*encoder) *encoder {
	if e, ok := encoders.Load(t); ok {
		return e.(*encoder)
	}
	if e := building[t]; e != nil {
		return e // a recursive type: filled in further up
	}
	name := t.String()
	e := &encoder{t: t, kind: t.Kind(), size: t.Size(), text: t.Implements(textMarshaler),
		head: append(binary.AppendUvarint(nil, uint64(len(name))), name...)}
	building[t] = e
	if e.kind != reflect.Interface {
		e.tw = typeWord(t)
		e.ptw = typeWord(reflect.PointerTo(t))
		// The data word of an interface holding a pointer-shaped value is
		// the value; that of any other value points to it, never nil.
		z := reflect.Zero(t).Interface()
		e.direct = (*eface)(unsafe.Pointer(&z)).data == nil
	}
	switch e.kind {
	case reflect.Pointer, reflect.Slice:
		e.elem = compile(t.Elem(), building)
	case reflect.Array:
		e.n = t.Len()
		e.elem = compile(t.Elem(), building)
		binary.BigEndian.PutUint64(e.count[:], uint64(e.n))
	case reflect.Map:
		e.key = compile(t.Key(), building)
		e.elem = compile(t.Elem(), building)
	case reflect.Struct:
		e.fields = make([]encField, t.NumField())
		binary.BigEndian.PutUint64(e.count[:], uint64(len(e.fields)))
		for i := range e.fields {
			f := t.Field(i)
			fe := compile(f.Type, building)
			prefix := append(binary.AppendUvarint(nil, uint64(len(f.Name))), f.Name...)
			ef := encField{off: f.Offset, prefix: append(prefix, fe.head...), enc: fe}
			switch {
			case f.IsExported():
			case f.Anonymous:
				ef.ro = viaEmbedded
			default:
				ef.ro = hidden
			}
			e.fields[i] = ef
		}
	}
	return e
}

var errTooDeep = fmt.Errorf("attr: digest: value nested deeper than %d (a cycle?)", maxDepth)

// value writes the encoding of the value of e's type at p, reached with
// access ro.
func (d *digester) value(e *encoder, p unsafe.Pointer, depth int, ro access) error {
	if depth > maxDepth {
		return errTooDeep
	}
	d.buf = append(d.buf, e.head...)
	return d.body(e, p, depth, ro)
}

// body writes what follows the head in the encoding of the value at p.
func (d *digester) body(e *encoder, p unsafe.Pointer, depth int, ro access) error {
	if e.text && ro == accessible {
		switch e.kind {
		case reflect.Pointer:
			if q := *(*unsafe.Pointer)(p); q != nil {
				return d.marshal(e, packEface(e.tw, q))
			}
		case reflect.Interface:
			return d.marshalInterface(e, p)
		default:
			// *t has t's methods: call them through a pointer to the
			// value rather than a copy of it.
			return d.marshal(e, packEface(e.ptw, p))
		}
	}
	switch e.kind {
	case reflect.Bool:
		if *(*bool)(p) {
			d.buf = append(d.buf, 1)
		} else {
			d.buf = append(d.buf, 0)
		}
	case reflect.Int:
		d.u64(uint64(*(*int)(p)))
	case reflect.Int8:
		d.u64(uint64(*(*int8)(p)))
	case reflect.Int16:
		d.u64(uint64(*(*int16)(p)))
	case reflect.Int32:
		d.u64(uint64(*(*int32)(p)))
	case reflect.Int64:
		d.u64(uint64(*(*int64)(p)))
	case reflect.Uint:
		d.u64(uint64(*(*uint)(p)))
	case reflect.Uint8:
		d.u64(uint64(*(*uint8)(p)))
	case reflect.Uint16:
		d.u64(uint64(*(*uint16)(p)))
	case reflect.Uint32:
		d.u64(uint64(*(*uint32)(p)))
	case reflect.Uint64:
		d.u64(*(*uint64)(p))
	case reflect.Uintptr:
		d.u64(uint64(*(*uintptr)(p)))
	case reflect.Float32:
		d.u64(math.Float64bits(float64(*(*float32)(p))))
	case reflect.Float64:
		d.u64(math.Float64bits(*(*float64)(p)))
	case reflect.Complex64:
		c := complex128(*(*complex64)(p))
		d.u64(math.Float64bits(real(c)))
		d.u64(math.Float64bits(imag(c)))
	case reflect.Complex128:
		c := *(*complex128)(p)
		d.u64(math.Float64bits(real(c)))
		d.u64(math.Float64bits(imag(c)))
	case reflect.String:
		d.long(*(*string)(p))
	case reflect.Slice:
		s := (*sliceHeader)(p)
		if s.data == nil {
			d.buf = append(d.buf, 'N')
			return nil
		}
		d.u64(uint64(s.len))
		if e.elem.kind == reflect.Uint8 {
			d.long(unsafe.String((*byte)(s.data), s.len))
			return nil
		}
		return d.elems(e.elem, s.data, s.len, depth, ro.inner())
	case reflect.Array:
		d.buf = append(d.buf, e.count[:]...)
		return d.elems(e.elem, p, e.n, depth, ro.inner())
	case reflect.Map:
		if *(*unsafe.Pointer)(p) == nil {
			d.buf = append(d.buf, 'N')
			return nil
		}
		return d.mapEntries(e, reflect.NewAt(e.t, p).Elem(), depth, ro.inner())
	case reflect.Struct:
		d.buf = append(d.buf, e.count[:]...)
		if depth+1 > maxDepth && len(e.fields) > 0 {
			return errTooDeep
		}
		for i := range e.fields {
			f := &e.fields[i]
			d.buf = append(d.buf, f.prefix...)
			if err := d.body(f.enc, unsafe.Add(p, f.off), depth+1, ro.field(f)); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			d.buf = append(d.buf, 'N')
			return nil
		}
		d.buf = append(d.buf, 'P')
		return d.value(e.elem, q, depth+1, ro)
	case reflect.Interface:
		de, dp := d.dynamic(e, p)
		if de == nil {
			d.buf = append(d.buf, 'N')
			return nil
		}
		d.buf = append(d.buf, 'P')
		return d.value(de, dp, depth+1, ro.inner())
	default:
		return fmt.Errorf("attr: cannot digest a value of type %v", e.t)
	}
	return nil
}

type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// elems writes the n elements of type e from p on.
func (d *digester) elems(e *encoder, p unsafe.Pointer, n, depth int, ro access) error {
	if n > 0 && depth+1 > maxDepth {
		return errTooDeep
	}
	for i := range n {
		d.buf = append(d.buf, e.head...)
		if err := d.body(e, unsafe.Add(p, uintptr(i)*e.size), depth+1, ro); err != nil {
			return err
		}
		d.spill()
	}
	return nil
}

// dynamic returns the encoder of the value held by the interface (of
// encoder e's type) at p, and where that value is; nil if it is nil.
func (d *digester) dynamic(e *encoder, p unsafe.Pointer) (*encoder, unsafe.Pointer) {
	var t reflect.Type
	if e.t.NumMethod() == 0 {
		t = reflect.TypeOf(*(*any)(p))
	} else if v := reflect.NewAt(e.t, p).Elem(); !v.IsNil() {
		t = v.Elem().Type()
	}
	if t == nil {
		return nil, nil
	}
	de := d.encoder(t)
	data := unsafe.Add(p, unsafe.Sizeof(uintptr(0))) // both layouts end with the data word
	if de.direct {
		return de, data
	}
	return de, *(*unsafe.Pointer)(data)
}

// marshal writes the text of x, a value of e's type or a pointer to one.
func (d *digester) marshal(e *encoder, x any) error {
	text, err := x.(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return fmt.Errorf("attr: digest of %v: %w", e.t, err)
	}
	d.buf = append(d.buf, 'T')
	d.bytes(text)
	return nil
}

// marshalInterface writes the text of the value held by the interface
// at p, whose type has a MarshalText method; a nil one is written as nil.
func (d *digester) marshalInterface(e *encoder, p unsafe.Pointer) error {
	v := reflect.NewAt(e.t, p).Elem()
	if v.IsNil() {
		d.buf = append(d.buf, 'N')
		return nil
	}
	return d.marshal(e, v.Interface())
}

// mapEntries writes the entries of map m (of encoder e's type), sorted by
// their keys' encodings: the encodings are collected in a scratch buffer
// of their own first.
func (d *digester) mapEntries(e *encoder, m reflect.Value, depth int, ro access) error {
	type entry struct{ k, v, end int }
	out := d.buf
	d.buf = d.scratch()
	d.maps++
	restore := func() {
		d.putScratch(d.buf)
		d.buf = out
		d.maps--
	}
	entries := make([]entry, 0, m.Len())
	k, v := reflect.New(e.key.t), reflect.New(e.elem.t)
	kp, vp := k.UnsafePointer(), v.UnsafePointer()
	k, v = k.Elem(), v.Elem()
	for it := m.MapRange(); it.Next(); {
		k.SetIterKey(it)
		v.SetIterValue(it)
		ks := len(d.buf)
		if err := d.value(e.key, kp, depth+1, ro); err != nil {
			restore()
			return err
		}
		vs := len(d.buf)
		if err := d.value(e.elem, vp, depth+1, ro); err != nil {
			restore()
			return err
		}
		entries = append(entries, entry{ks, vs, len(d.buf)})
	}
	enc := d.buf
	d.buf = out
	slices.SortFunc(entries, func(a, b entry) int {
		if c := bytes.Compare(enc[a.k:a.v], enc[b.k:b.v]); c != 0 {
			return c
		}
		// Equal encodings of different keys (NaNs, pointers to equal
		// values): order them by value, so the digest does not depend
		// on the map's iteration order.
		return bytes.Compare(enc[a.v:a.end], enc[b.v:b.end])
	})
	d.u64(uint64(len(entries)))
	for _, en := range entries {
		d.bytes(enc[en.k:en.v])
		d.bytes(enc[en.v:en.end])
	}
	d.putScratch(enc)
	d.maps--
	d.spill()
	return nil
}
