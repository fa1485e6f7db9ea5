package graph

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/attr"
)

// The journal's records are written in a small binary format: the
// executor writes tens of thousands of them per second, and JSON costs
// more than everything else it does per node-role. Layout: a version
// byte, then fields in order as uvarints, varints and length-prefixed
// strings (see marshal).
//
// Version 2 (this one) differs from version 1 in the last success's
// output only: it starts with a byte that says how it is held — 0: gob,
// holding no secret; 2: gob sealed by package seal under the
// deployment's key-encryption key, bound to the record's store key (see
// secrets.go) — and digests of secret inputs are keyed ("hmac-sha256:").
// Version 1 records (plain gob outputs, plain digests) are still read;
// the next write of each brings it to version 2.
const (
	recordVersion   = 2
	recordVersionV1 = 1
)

type recWriter struct{ b []byte }

func (w *recWriter) u(v uint64)     { w.b = binary.AppendUvarint(w.b, v) }
func (w *recWriter) i(v int64)      { w.b = binary.AppendVarint(w.b, v) }
func (w *recWriter) s(v string)     { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *recWriter) bytes(v []byte) { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *recWriter) t(v time.Time) {
	if v.IsZero() {
		w.i(0)
		return
	}
	w.i(v.UnixNano())
}

// fields writes f in name order (as version 2 always did, from a map).
func (w *recWriter) fields(f fieldDigests) {
	var small [8]int
	order := small[:0]
	if f.len() > len(small) {
		order = make([]int, 0, f.len())
	}
	for k := range f.names {
		order = append(order, k)
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(f.names[a], f.names[b]) })
	w.u(uint64(len(order)))
	for _, k := range order {
		w.s(f.names[k])
		w.s(f.digs[k])
	}
}

func (r *record) marshal(buf []byte) []byte {
	w := recWriter{b: append(buf, recordVersion)}
	w.s(r.ID)
	w.u(uint64(r.State))
	w.u(uint64(r.Attempt))
	w.s(r.Reason)
	w.s(r.Error)
	w.s(r.BlockedBy)
	w.t(r.At)
	w.i(int64(r.Duration))
	if r.Last == nil {
		w.u(0)
		return w.b
	}
	l := r.Last
	w.u(1)
	w.s(l.Version)
	w.s(l.Digest)
	w.fields(l.Fields)
	var small [8]string
	pk := small[:0]
	if len(l.Peers) > len(small) {
		pk = make([]string, 0, len(l.Peers))
	}
	for k := range l.Peers {
		pk = append(pk, k)
	}
	slices.Sort(pk)
	w.u(uint64(len(pk)))
	for _, k := range pk {
		w.s(k)
		w.u(uint64(len(l.Peers[k])))
		for _, p := range l.Peers[k] {
			w.s(p)
		}
	}
	w.bytes(l.Output)
	w.i(int64(l.Duration))
	w.t(l.At)
	return w.b
}

type recReader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated record")

func (r *recReader) u() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errShort, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) i() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = errShort, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) s() string {
	n := r.u()
	if uint64(len(r.b)) < n {
		r.err, r.b = errShort, nil
		return ""
	}
	v := string(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *recReader) t() time.Time {
	v := r.i()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

func (rec *record) unmarshal(b []byte) error {
	if len(b) == 0 || (b[0] != recordVersion && b[0] != recordVersionV1) {
		return fmt.Errorf("unknown record format %d (written by a newer mason? use that version, or delete the key to forget the node-role)", firstByte(b))
	}
	v1 := b[0] == recordVersionV1
	r := recReader{b: b[1:]}
	rec.ID = r.s()
	rec.State = State(r.u())
	rec.Attempt = int(r.u())
	rec.Reason, rec.Error, rec.BlockedBy = r.s(), r.s(), r.s()
	rec.At = r.t()
	rec.Duration = time.Duration(r.i())
	if r.u() == 1 {
		l := &success{}
		l.Version, l.Digest = r.s(), r.s()
		if n := r.u(); n > 0 && r.err == nil {
			l.Fields = fieldDigests{names: make([]string, 0, n), digs: make([]string, 0, n)}
			for range n {
				if r.err != nil {
					break
				}
				l.Fields.names = append(l.Fields.names, r.s())
				l.Fields.digs = append(l.Fields.digs, r.s())
			}
		}
		if n := r.u(); n > 0 && r.err == nil {
			l.Peers = make(map[string][]string, n)
			for range n {
				k := r.s()
				m := r.u()
				var ps []string
				for range m {
					if r.err != nil {
						break
					}
					ps = append(ps, r.s())
				}
				l.Peers[k] = ps
			}
		}
		if out := r.s(); out != "" {
			if v1 {
				// A plain gob: whether it holds a secret, the plan knows
				// (sealer.migrate).
				l.Output = append([]byte{outPlain}, out...)
			} else {
				switch out[0] {
				case outPlain, outSealed:
				default:
					return fmt.Errorf("output held in unknown form %d (written by a newer mason?)", out[0])
				}
				l.Output = []byte(out)
			}
		}
		l.Duration = time.Duration(r.i())
		l.At = r.t()
		rec.Last = l
	}
	return r.err
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// outputCodec encodes one output type with gob, sending gob's type
// description once: it keeps an encoder per type and prepends the type
// description, captured once, to every value. Decoding needs nothing
// special: each stored output is a complete gob stream. Types holding
// interface values describe those per stream, so they get a fresh
// encoder every time. Every encoded output starts with a byte saying
// whether it holds a secret (outPlain, outSecret), which the journal
// seals before writing it.
type outputCodec struct {
	empty   bool // no exported fields: nothing to store
	secrets attr.Holding
	mu      sync.Mutex
	buf     bytes.Buffer
	enc     *gob.Encoder
	prefix  []byte
	fresh   bool
	// fast, when set, writes the value messages enc would (fastgob.go).
	fast *fastGob
}

type outputCodecs struct{ m sync.Map } // reflect.Type → *outputCodec

func (cs *outputCodecs) encode(out any) ([]byte, error) { return cs.encodeIn(out, nil) }

// encodeIn is encode, writing small outputs into the free end of *slab
// (made anew when too little is left) rather than each into an
// allocation of its own; slab may be nil.
func (cs *outputCodecs) encodeIn(out any, slab *[]byte) ([]byte, error) {
	v := reflect.ValueOf(out)
	if !v.IsValid() {
		return nil, nil
	}
	c, ok := cs.m.Load(v.Type())
	if !ok {
		c, _ = cs.m.LoadOrStore(v.Type(), newOutputCodec(v.Type()))
	}
	return c.(*outputCodec).encode(v, slab)
}

// slabBytes is the size of a worker's block of encoded outputs.
const slabBytes = 4 << 10

func newOutputCodec(t reflect.Type) *outputCodec {
	c := &outputCodec{empty: !hasExported(t), fresh: hasInterface(t, map[reflect.Type]bool{}), secrets: attr.SecretsIn(t)}
	if c.empty || c.fresh {
		return c
	}
	c.enc = gob.NewEncoder(&c.buf)
	zero := reflect.New(t).Elem()
	if err := c.enc.EncodeValue(zero); err != nil {
		c.fresh = true // report the error on use, from a fresh encoder
		return c
	}
	first := bytes.Clone(c.buf.Bytes())
	c.buf.Reset()
	if err := c.enc.EncodeValue(zero); err != nil {
		c.fresh = true
		return c
	}
	c.prefix = first[:len(first)-c.buf.Len()]
	if f := newFastGob(t); f != nil && f.setTypeID(c.buf.Bytes()) && bytes.Equal(f.appendMessage(nil, zero), c.buf.Bytes()) {
		c.fast = f
	}
	c.buf.Reset()
	return c
}

func (c *outputCodec) encode(v reflect.Value, slab *[]byte) ([]byte, error) {
	if c.empty {
		return nil, nil
	}
	held := outPlain
	switch c.secrets {
	case attr.HoldsSecret:
		held = outSecret
	case attr.MayHoldSecret:
		if attr.ContainsSecret(v.Interface()) {
			held = outSecret
		}
	}
	if c.fresh {
		buf := bytes.NewBuffer([]byte{held})
		if err := gob.NewEncoder(buf).EncodeValue(v); err != nil {
			return nil, outputErr(v.Type(), err)
		}
		return buf.Bytes(), nil
	}
	if c.fast != nil {
		want := 1 + len(c.prefix) + 64
		if slab == nil || want > slabBytes/8 {
			out := make([]byte, 0, want)
			return c.fast.appendMessage(append(append(out, held), c.prefix...), v), nil
		}
		if cap(*slab)-len(*slab) < want {
			*slab = make([]byte, 0, slabBytes)
		}
		free := (*slab)[len(*slab):len(*slab):cap(*slab)]
		out := c.fast.appendMessage(append(append(free, held), c.prefix...), v)
		if cap(out) == cap(free) { // written in place: the slab's end moves past it
			*slab = (*slab)[:len(*slab)+len(out)]
			out = out[:len(out):len(out)]
		}
		return out, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
	if err := c.enc.EncodeValue(v); err != nil {
		return nil, outputErr(v.Type(), err)
	}
	out := make([]byte, 0, 1+len(c.prefix)+c.buf.Len())
	return append(append(append(out, held), c.prefix...), c.buf.Bytes()...), nil
}

func outputErr(t reflect.Type, err error) error {
	return fmt.Errorf("encoding output %v for the journal: %w (outputs must be gob-encodable: exported fields, registered interface types)", t, err)
}

func hasInterface(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return hasInterface(t.Elem(), seen)
	case reflect.Map:
		return hasInterface(t.Key(), seen) || hasInterface(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if hasInterface(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}
