package graph

import (
	"bytes"
	"encoding/gob"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
)

type (
	fgFlat struct {
		A bool
		B int8
		C int64
		D uint
		E uint64
		F float32
		G float64
		H string
		I []byte
		J uint8
		K int
	}
	fgName  string
	fgInner struct {
		Addr string
		Port uint16
		Tags []string
	}
	fgNested struct {
		X   fgInner
		Ys  []fgInner
		S   []string
		BB  [][]byte
		NN  [][]int
		M   fgName
		Fs  []float64
		Bs  []bool
		Nil []fgInner
	}
	fgRecursive struct {
		Name string
		Kids []fgRecursive
	}
	fgEmbeds struct {
		fgInner
		N int
	}
	fgUnexported struct {
		N int
		n int
	}
)

// The fast encoder writes exactly gob's bytes, for random values of the
// types it covers, and decodes back to the value.
func TestFastGobMatchesGob(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, typ := range []reflect.Type{
		reflect.TypeFor[benchA](), reflect.TypeFor[fgFlat](), reflect.TypeFor[fgInner](), reflect.TypeFor[fgNested](),
	} {
		c := newOutputCodec(typ)
		require.NotNil(t, c.fast, "%v should have a fast encoder", typ)
		// A second encoder, to compare with: it has sent the type, as the
		// codec's had when the fast one took over.
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		require.NoError(t, enc.EncodeValue(reflect.New(typ).Elem()))
		// Outputs written into a worker's slab must not overlap: each is
		// checked again once the others were written after it.
		var slab []byte
		type written struct {
			out  []byte
			want []byte
		}
		var inSlab []written
		for range 2000 {
			v := reflect.New(typ).Elem()
			fillRandom(rng, v, 0)
			buf.Reset()
			require.NoError(t, enc.EncodeValue(v))
			want := buf.Bytes()
			got := c.fast.appendMessage([]byte("keep"), v)
			require.Equal(t, "keep", string(got[:4]))
			require.Equal(t, want, got[4:], "%v: %#v", typ, v.Interface())

			out, err := c.encode(v, nil)
			require.NoError(t, err)
			slabbed, err := c.encode(v, &slab)
			require.NoError(t, err)
			require.Equal(t, out, slabbed, "%v: in a slab", typ)
			inSlab = append(inSlab, written{slabbed, bytes.Clone(out)})
			back, err := decodeOutput(out, typ)
			require.NoError(t, err)
			require.Equal(t, normalize(v.Interface()), normalize(back), "%v round trip", typ)
		}
		for k, w := range inSlab {
			require.Equal(t, w.want, w.out, "%v: output %d changed by those written after it", typ, k)
		}
	}
}

// normalize makes values gob round-trips comparable: gob decodes empty
// slices as nil and leaves NaN unequal to itself.
func normalize(x any) any {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(x); err != nil {
		panic(err)
	}
	return buf.String()
}

// Types the fast encoder does not cover go through gob.
func TestFastGobDeclines(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[struct{ P *int }](),
		reflect.TypeFor[struct{ M map[string]int }](),
		reflect.TypeFor[struct{ A [3]int }](),
		reflect.TypeFor[struct{ T time.Time }](),
		reflect.TypeFor[struct{ S attr.Secret[string] }](),
		reflect.TypeFor[struct{ C complex128 }](),
		reflect.TypeFor[fgRecursive](),
		reflect.TypeFor[fgEmbeds](),
		reflect.TypeFor[fgUnexported](),
		reflect.TypeFor[struct{ E struct{} }](),
	} {
		require.Nil(t, newFastGob(typ), "%v", typ)
		c := newOutputCodec(typ)
		require.Nil(t, c.fast, "%v", typ)
	}
}

func fillRandom(rng *rand.Rand, v reflect.Value, depth int) {
	zero := rng.IntN(4) == 0 // zeros are left out by gob: test them often
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!zero && rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !zero {
			bitsN := v.Type().Bits()
			x := int64(rng.Uint64() >> (64 - bitsN))
			if rng.IntN(3) == 0 {
				x = int64(rng.IntN(300)) - 150
			}
			v.SetInt(x) // wraps to the field's size
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !zero {
			x := rng.Uint64() >> rng.IntN(64)
			v.SetUint(x)
		}
	case reflect.Float32, reflect.Float64:
		if !zero {
			fs := []float64{rng.NormFloat64() * 1e6, math.Copysign(0, -1), math.Inf(1), math.NaN(), 1, float64(rng.IntN(100))}
			v.SetFloat(fs[rng.IntN(len(fs))])
		}
	case reflect.String:
		if !zero {
			s := []string{"n1", "10.0.0.1:2379", "ü∂", string(make([]byte, 200)), "x"}
			v.SetString(s[rng.IntN(len(s))])
		}
	case reflect.Slice:
		if zero || depth > 3 {
			if rng.IntN(2) == 0 {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0)) // empty, not nil
			}
			return
		}
		n := rng.IntN(5)
		if rng.IntN(10) == 0 {
			n = 200
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fillRandom(rng, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			fillRandom(rng, v.Field(i), depth+1)
		}
	}
}
