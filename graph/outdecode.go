package graph

import (
	"bytes"
	"encoding/gob"
	"reflect"
	"sync"
)

// outputDecoders decode journaled outputs for one plan and its Apply. A
// journaled output is a whole gob stream: its type's description, then
// the value. Decoding each with a new gob.Decoder compiles the type every
// time, which made a converged re-plan of 10,000 nodes spend most of its
// time in gob. So each output type gets one decoder, primed with the
// first whole stream; later outputs that start with the same type
// description (outputCodec.prefix: those this process's encoder wrote,
// or a process that numbered gob's types alike) are fed to it without
// it. Anything else takes decodeOutput's way.
type outputDecoders struct {
	mu sync.Mutex
	m  map[reflect.Type]*primedDecoder
}

type primedDecoder struct {
	prefix []byte // nil: not for this type (no exported fields, interfaces)
	buf    bytes.Buffer
	dec    *gob.Decoder // nil until primed
}

func (ds *outputDecoders) decode(b []byte, t reflect.Type) (any, error) {
	if len(b) == 0 {
		return decodeOutput(b, t)
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.m == nil {
		ds.m = map[reflect.Type]*primedDecoder{}
	}
	pd := ds.m[t]
	if pd == nil {
		pd = &primedDecoder{}
		if c := newOutputCodec(t); !c.empty && !c.fresh {
			pd.prefix = c.prefix
		}
		ds.m[t] = pd
	}
	// The byte before the gob says how the output is held; only plain
	// gob (with or without a secret in it) is decoded here.
	if len(pd.prefix) == 0 || (b[0] != outPlain && b[0] != outSecret) || !bytes.HasPrefix(b[1:], pd.prefix) {
		return decodeOutput(b, t)
	}
	msg := b[1:]
	if pd.dec == nil {
		pd.buf.Reset()
		pd.dec = gob.NewDecoder(&pd.buf)
	} else {
		msg = msg[len(pd.prefix):]
	}
	pd.buf.Write(msg)
	p := reflect.New(t)
	if err := pd.dec.DecodeValue(p); err != nil || pd.buf.Len() != 0 {
		pd.dec = nil // start again with the next one
		return decodeOutput(b, t)
	}
	return p.Elem().Interface(), nil
}
