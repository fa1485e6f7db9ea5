package graph

import (
	"encoding"
	"encoding/gob"
	"math"
	"math/bits"
	"reflect"
)

// fastGob writes what a gob.Encoder that has already sent a type's
// description writes for a value of that type — byte for byte, so that
// journals and their readers cannot tell — without gob's engine, which
// cost more than anything else a no-op node-role's success did. It covers
// the types role outputs mostly are: structs of booleans, integers,
// floats, strings, byte slices, and structs and slices of those. Any
// other type (pointers, maps, arrays, interfaces, unexported fields,
// types with their own marshalling, recursive types) has no fastGob and
// goes through gob; newOutputCodec also checks the zero value's bytes
// against gob's before it uses one.
type fastGob struct {
	typeID []byte // the type's id, as gob's value messages start with it
	root   *gobNode
}

type gobKind uint8

const (
	gobBool gobKind = iota + 1
	gobInt
	gobUint
	gobFloat
	gobString
	gobBytes
	gobSlice
	gobStruct
)

// gobNode is how one type is written.
type gobNode struct {
	kind   gobKind
	fields []gobField // gobStruct: every field, each sent by gob
	elem   *gobNode   // gobSlice
}

type gobField struct {
	index int
	node  *gobNode
}

var (
	gobEncoderT   = reflect.TypeFor[gob.GobEncoder]()
	binMarshalerT = reflect.TypeFor[encoding.BinaryMarshaler]()
	txtMarshalerT = reflect.TypeFor[encoding.TextMarshaler]()
)

// newFastGob returns the fast encoder of struct type t, or nil if t is not
// one it covers.
func newFastGob(t reflect.Type) *fastGob {
	if t.Kind() != reflect.Struct {
		return nil
	}
	root := gobNodeOf(t, map[reflect.Type]bool{})
	if root == nil {
		return nil
	}
	return &fastGob{root: root}
}

func gobNodeOf(t reflect.Type, path map[reflect.Type]bool) *gobNode {
	if path[t] {
		return nil // recursive
	}
	for _, m := range []reflect.Type{gobEncoderT, binMarshalerT, txtMarshalerT} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return nil // gob calls its own marshalling
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return &gobNode{kind: gobBool}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &gobNode{kind: gobInt}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &gobNode{kind: gobUint}
	case reflect.Float32, reflect.Float64:
		return &gobNode{kind: gobFloat}
	case reflect.String:
		return &gobNode{kind: gobString}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return &gobNode{kind: gobBytes}
		}
		path[t] = true
		defer delete(path, t)
		elem := gobNodeOf(t.Elem(), path)
		if elem == nil {
			return nil
		}
		return &gobNode{kind: gobSlice, elem: elem}
	case reflect.Struct:
		if t.NumField() == 0 {
			return nil
		}
		path[t] = true
		defer delete(path, t)
		n := &gobNode{kind: gobStruct}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Anonymous {
				return nil // gob skips or flattens these: not worth copying
			}
			fn := gobNodeOf(f.Type, path)
			if fn == nil {
				return nil
			}
			n.fields = append(n.fields, gobField{index: i, node: fn})
		}
		return n
	}
	return nil
}

// setTypeID takes the type id from gob's encoding of a value (a whole
// value message: its length, the type id, the value).
func (f *fastGob) setTypeID(msg []byte) bool {
	_, n := gobUintLen(msg)
	if n == 0 {
		return false
	}
	_, m := gobUintLen(msg[n:])
	if m == 0 {
		return false
	}
	f.typeID = append([]byte(nil), msg[n:n+m]...)
	return true
}

// gobUintLen reads one of gob's unsigned integers, returning it and how
// many bytes it took (0: malformed).
func gobUintLen(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0] <= 0x7f {
		return uint64(b[0]), 1
	}
	n := int(-int8(b[0]))
	if n > 8 || len(b) < 1+n {
		return 0, 0
	}
	var x uint64
	for _, c := range b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	return x, 1 + n
}

// appendMessage appends the value message for v, as gob frames it: its
// length, then the type id and the value.
func (f *fastGob) appendMessage(dst []byte, v reflect.Value) []byte {
	// The length comes first: write the body after room for the longest
	// length (9 bytes), then move it up behind the real one.
	start := len(dst)
	dst = append(dst, make([]byte, 9)...)
	dst = append(dst, f.typeID...)
	dst = appendGobStruct(dst, f.root, v)
	body := len(dst) - start - 9
	var lenBuf [9]byte
	l := appendGobUint(lenBuf[:0], uint64(body))
	copy(dst[start:], l)
	copy(dst[start+len(l):], dst[start+9:])
	return dst[:start+len(l)+body]
}

func appendGobUint(b []byte, x uint64) []byte {
	if x <= 0x7f {
		return append(b, byte(x))
	}
	n := 8 - bits.LeadingZeros64(x)>>3
	b = append(b, byte(-int8(n)))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

func appendGobInt(b []byte, i int64) []byte {
	var x uint64
	if i < 0 {
		x = uint64(^i<<1) | 1
	} else {
		x = uint64(i << 1)
	}
	return appendGobUint(b, x)
}

// appendGobStruct writes a struct as gob does: each field that is not
// zero (structs always) as its number's delta from the last one sent and
// its value, then 0.
func appendGobStruct(b []byte, n *gobNode, v reflect.Value) []byte {
	last := -1
	for k, f := range n.fields {
		fv := v.Field(f.index)
		if isGobZero(f.node, fv) {
			continue
		}
		b = appendGobUint(b, uint64(k-last))
		last = k
		b = appendGobValue(b, f.node, fv)
	}
	return append(b, 0)
}

// isGobZero says whether gob leaves a struct field with this value out.
func isGobZero(n *gobNode, v reflect.Value) bool {
	switch n.kind {
	case gobBool:
		return !v.Bool()
	case gobInt:
		return v.Int() == 0
	case gobUint:
		return v.Uint() == 0
	case gobFloat:
		return v.Float() == 0
	case gobString, gobBytes, gobSlice:
		return v.Len() == 0
	}
	return false // structs are always sent
}

func appendGobValue(b []byte, n *gobNode, v reflect.Value) []byte {
	switch n.kind {
	case gobBool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	case gobInt:
		return appendGobInt(b, v.Int())
	case gobUint:
		return appendGobUint(b, v.Uint())
	case gobFloat:
		return appendGobUint(b, bits.ReverseBytes64(math.Float64bits(v.Float())))
	case gobString:
		s := v.String()
		return append(appendGobUint(b, uint64(len(s))), s...)
	case gobBytes:
		return append(appendGobUint(b, uint64(v.Len())), v.Bytes()...)
	case gobSlice:
		l := v.Len()
		b = appendGobUint(b, uint64(l))
		for i := range l {
			b = appendGobValue(b, n.elem, v.Index(i)) // elements are always sent
		}
		return b
	case gobStruct:
		return appendGobStruct(b, n, v)
	}
	panic("graph: fastGob: unknown kind")
}
