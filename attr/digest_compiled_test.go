package attr

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Types of the random values the compiled digest is compared on: every
// kind it supports, named and unnamed, nested, recursive, exported and
// not, with TextMarshaler implementations by value and by pointer.
type (
	rInt    int
	rStr    string
	rByte   uint8
	rBytes  []byte
	rByteA  [4]rByte
	rFloats struct {
		F32 float32
		F64 float64
		C64 complex64
		C   complex128
	}
	rInts struct {
		I   int
		I8  int8
		I16 int16
		I32 int32
		I64 int64
		U   uint
		U8  uint8
		U16 uint16
		U32 uint32
		U64 uint64
		Ptr uintptr
		B   bool
		D   time.Duration
	}
	rList struct {
		Val  int
		Next *rList
		name string
	}
	rText    struct{ n int } // MarshalText on the value
	rPtrText struct{ n int } // MarshalText on the pointer
	rTextErr struct{}
	rEmbeds  struct {
		rInner
		RInts
		Extra string
	}
	RInts  rInts
	rInner struct {
		A   []rStr
		b   map[string]int
		Any any
	}
	rOuter struct {
		Inner    rInner
		inner    rInner
		P        *rInner
		S        []rInner
		M        map[rStr]*rInner
		K        map[[2]int8]bool
		AnyKey   map[any]string
		Err      error
		err      error
		Str      fmt.Stringer
		TM       interface{ MarshalText() ([]byte, error) }
		T        time.Time
		t        time.Time
		A        netip.Addr
		a        netip.Addr
		PT       *rPtrText
		VT       rText
		vt       rText
		VTP      *rText
		Sec      Secret[string]
		SecTime  Secret[time.Time]
		SecAddrs Secret[[]netip.Addr]
		Arr      [3]int16
		Bytes    rBytes
		ByteA    rByteA
		Empty    struct{}
		Zero     [0]int
		List     *rList
		Floats   rFloats
		Ints     rInts
		Embeds   rEmbeds
	}
)

func (t rText) MarshalText() ([]byte, error)     { return []byte(fmt.Sprint("text:", t.n)), nil }
func (t *rPtrText) MarshalText() ([]byte, error) { return []byte(fmt.Sprint("ptr:", t.n)), nil }
func (rTextErr) MarshalText() ([]byte, error)    { return nil, errors.New("no text") }
func (s rStr) String() string                    { return string(s) }

// randomTypes are the types of the values compared.
var randomTypes = []reflect.Type{
	reflect.TypeFor[rOuter](),
	reflect.TypeFor[rInner](),
	reflect.TypeFor[rList](),
	reflect.TypeFor[rFloats](),
	reflect.TypeFor[rInts](),
	reflect.TypeFor[rEmbeds](),
	reflect.TypeFor[[]rOuter](),
	reflect.TypeFor[map[string]any](),
	reflect.TypeFor[map[rInt][]rText](),
	reflect.TypeFor[map[string]map[string]rBytes](),
	reflect.TypeFor[*rOuter](),
	reflect.TypeFor[[]any](),
	reflect.TypeFor[[2]rInner](),
	reflect.TypeFor[rText](),
	reflect.TypeFor[*rPtrText](),
	reflect.TypeFor[rPtrText](),
	reflect.TypeFor[Secret[rOuter]](),
	reflect.TypeFor[netip.Addr](),
	reflect.TypeFor[time.Time](),
	reflect.TypeFor[[]byte](),
	reflect.TypeFor[string](),
	reflect.TypeFor[rStr](),
	reflect.TypeFor[float64](),
	reflect.TypeFor[float32](),
	reflect.TypeFor[int8](),
	reflect.TypeFor[uint64](),
	reflect.TypeFor[bool](),
	reflect.TypeFor[complex64](),
	reflect.TypeFor[*int](),
	reflect.TypeFor[**string](),
	reflect.TypeFor[[]*rList](),
	reflect.TypeFor[struct {
		X, y int
		Z    []rFloats
	}](),
}

// dynamicTypes are what interface fields are filled with.
var dynamicTypes = []reflect.Type{
	reflect.TypeFor[int](), reflect.TypeFor[rInt](), reflect.TypeFor[string](), reflect.TypeFor[rStr](),
	reflect.TypeFor[float64](), reflect.TypeFor[[]int](), reflect.TypeFor[map[string]int](),
	reflect.TypeFor[rText](), reflect.TypeFor[*rPtrText](), reflect.TypeFor[rInner](), reflect.TypeFor[*rInner](),
	reflect.TypeFor[netip.Addr](), reflect.TypeFor[time.Time](), reflect.TypeFor[Secret[int]](),
	reflect.TypeFor[[]any](), reflect.TypeFor[*int](), reflect.TypeFor[struct{ P *int }](),
	reflect.TypeFor[[1]*string](), reflect.TypeFor[map[int]bool](), reflect.TypeFor[bool](),
}

type randomizer struct {
	r *rand.Rand
}

var specialFloats = []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1),
	math.MaxFloat64, math.SmallestNonzeroFloat64, 1, -1.5}

func (z *randomizer) float(key bool) float64 {
	if z.r.IntN(3) == 0 {
		f := specialFloats[z.r.IntN(len(specialFloats))]
		if key && math.IsNaN(f) {
			return 1 // NaN keys have equal encodings: their order is the map's
		}
		return f
	}
	return z.r.NormFloat64() * math.Pow(10, float64(z.r.IntN(40)-20))
}

func (z *randomizer) str() string {
	const chars = "abcxyz019 -é\x00\xff"
	n := z.r.IntN(12)
	if z.r.IntN(20) == 0 {
		n = 200 + z.r.IntN(300)
	}
	var b strings.Builder
	for range n {
		b.WriteByte(chars[z.r.IntN(len(chars))])
	}
	return b.String()
}

// fill sets v, which is settable, to a random value of its type. key says
// v is a map key (no NaN, no pointers).
func (z *randomizer) fill(v reflect.Value, depth int, key bool) {
	t := v.Type()
	switch t {
	case reflect.TypeFor[time.Time]():
		zones := []*time.Location{time.UTC, time.FixedZone("X", 3600), time.FixedZone("", -7200)}
		tm := time.Unix(z.r.Int64N(1<<34)-1<<33, z.r.Int64N(1e9)).In(zones[z.r.IntN(len(zones))])
		v.Set(reflect.ValueOf(tm))
		return
	case reflect.TypeFor[netip.Addr]():
		var a netip.Addr
		switch z.r.IntN(3) {
		case 1:
			a = netip.AddrFrom4([4]byte{byte(z.r.IntN(256)), byte(z.r.IntN(256)), 0, 1})
		case 2:
			a = netip.AddrFrom16([16]byte{0xfd, 15: byte(z.r.IntN(256))})
			if z.r.IntN(2) == 0 {
				a = a.WithZone("eth0")
			}
		}
		v.Set(reflect.ValueOf(a))
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(z.r.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := z.r.Int64()
		if z.r.IntN(3) == 0 {
			n = int64(z.r.IntN(5) - 2)
		}
		v.SetInt(n) // truncated to the width, as a conversion does
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(z.r.Uint64() >> z.r.IntN(64))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(z.float(key))
	case reflect.Complex64, reflect.Complex128:
		v.SetComplex(complex(z.float(key), z.float(key)))
	case reflect.String:
		v.SetString(z.str())
	case reflect.Slice:
		if z.r.IntN(5) == 0 || depth > 6 {
			return // nil
		}
		n := z.r.IntN(5)
		if t.Elem().Kind() == reflect.Uint8 && z.r.IntN(10) == 0 {
			n = 1000 + z.r.IntN(20000)
		}
		s := reflect.MakeSlice(t, n, n+z.r.IntN(3))
		for i := range n {
			z.fill(s.Index(i), depth+1, key)
		}
		v.Set(s)
	case reflect.Array:
		for i := range t.Len() {
			z.fill(v.Index(i), depth+1, key)
		}
	case reflect.Map:
		if z.r.IntN(5) == 0 || depth > 6 {
			return
		}
		m := reflect.MakeMap(t)
		for range z.r.IntN(6) {
			k := reflect.New(t.Key()).Elem()
			z.fill(k, depth+1, true)
			e := reflect.New(t.Elem()).Elem()
			z.fill(e, depth+1, key)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		if z.r.IntN(3) == 0 || depth > 6 || key {
			return
		}
		p := reflect.New(t.Elem())
		z.fill(p.Elem(), depth+1, key)
		v.Set(p)
	case reflect.Interface:
		// A nil interface whose type has MarshalText made the reflective
		// digest panic: TestCompiledDigestEdges covers it.
		if (z.r.IntN(4) == 0 || depth > 6) && !t.Implements(textMarshaler) {
			return
		}
		for range 500 {
			dt := dynamicTypes[z.r.IntN(len(dynamicTypes))]
			if !dt.Implements(t) || (key && !dt.Comparable()) || (key && dt.Kind() == reflect.Pointer) {
				continue
			}
			dv := reflect.New(dt).Elem()
			z.fill(dv, depth+1, key)
			if (key && !dv.Comparable()) || (t.NumMethod() > 0 && dv.Kind() == reflect.Pointer && dv.IsNil()) {
				continue // methods of a nil pointer may panic, in both digests
			}
			v.Set(dv)
			return
		}
		if t == reflect.TypeFor[error]() {
			v.Set(reflect.ValueOf(errors.New(z.str())))
		}
	case reflect.Struct:
		for i := range t.NumField() {
			f := v.Field(i)
			if !f.CanSet() {
				f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
			}
			z.fill(f, depth+1, key)
		}
	}
}

// requireSameDigest checks that the compiled digest of x is the
// reflective one's: the same string, or the same error.
func requireSameDigest(t *testing.T, x any, what string) {
	t.Helper()
	want, wantErr := refDigest(x)
	got, err := Digest(x)
	if wantErr != nil {
		require.EqualError(t, err, wantErr.Error(), what)
		return
	}
	require.NoError(t, err, what)
	require.Equal(t, want, got, what)
}

// requireSameFields checks DigestStructFields of every field of v
// against the reflective one.
func requireSameFields(t *testing.T, v reflect.Value, what string) {
	t.Helper()
	n := v.NumField()
	idx := make([]int, 0, n)
	names := make([]string, 0, n)
	for i := range n {
		if i%3 != 1 { // a subset, in order
			idx = append(idx, i)
			names = append(names, v.Type().Field(i).Name)
		}
	}
	wantPer, per := make([]string, len(idx)), make([]string, len(idx))
	want, wantErr := refDigestStructFields(v, idx, names, wantPer)
	got, err := DigestStructFields(v, idx, names, per)
	if wantErr != nil {
		require.EqualError(t, err, wantErr.Error(), what)
		return
	}
	require.NoError(t, err, what)
	require.Equal(t, want, got, what)
	require.Equal(t, wantPer, per, what)
}

// The compiled digest gives the reflective digest's strings, byte for
// byte, for thousands of random values of many types.
func TestCompiledDigestMatchesReflective(t *testing.T) {
	n := 4000
	if testing.Short() {
		n = 400
	}
	for i := range n {
		seed := uint64(i)
		z := &randomizer{r: rand.New(rand.NewPCG(seed, 20))}
		typ := randomTypes[i%len(randomTypes)]
		v := reflect.New(typ).Elem()
		z.fill(v, 0, false)
		what := fmt.Sprintf("seed %d, %v", seed, typ)
		requireSameDigest(t, v.Interface(), what)
		if typ.Kind() != reflect.Struct {
			continue
		}
		requireSameFields(t, v, what+" (addressable)")
		requireSameFields(t, reflect.ValueOf(v.Interface()), what+" (a copy)")
		// Through an unexported field: TextMarshalers are not called.
		w := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "x", PkgPath: "attr", Type: typ}})).Elem()
		reflect.NewAt(typ, unsafe.Pointer(w.Field(0).UnsafeAddr())).Elem().Set(v)
		requireSameFields(t, w.Field(0), what+" (unexported, addressable)")
		requireSameFields(t, reflect.ValueOf(w.Interface()).Field(0), what+" (unexported, a copy)")

		names := []string{"a", "b", "c"}
		vals := []any{v.Interface(), fmt.Sprint(i), nil}
		want, wantErr := refDigestFields(names, vals)
		got, err := DigestFields(names, vals)
		if wantErr != nil {
			require.EqualError(t, err, wantErr.Error(), what)
		} else {
			require.NoError(t, err, what)
			require.Equal(t, want, got, what)
		}
	}
}

// Values the random ones may miss: the edges of each kind, errors, and
// values so deep they must be refused.
func TestCompiledDigestEdges(t *testing.T) {
	deep := &rList{}
	for l, k := deep, 0; k < 70; k++ {
		l.Next = &rList{Val: k}
		l = l.Next
	}
	ring := &rList{Val: 1}
	ring.Next = ring
	one := 1
	pone := &one
	var nilText *rText
	cases := map[string]any{
		"nil":             nil,
		"nil pointer":     (*int)(nil),
		"pointer":         &one,
		"pointer pointer": &pone,
		"nil map":         map[string]int(nil),
		"empty map":       map[string]int{},
		"nil slice":       []int(nil),
		"empty slice":     []int{},
		"nil bytes":       []byte(nil),
		"bytes":           []byte("abc"),
		"big bytes":       make([]byte, 3*spillAt+5),
		"big string":      strings.Repeat("x", 2*spillAt),
		"big slice":       make([]rInts, 2000),
		"big map": func() map[int]string {
			m := map[int]string{}
			for i := range 3000 {
				m[i] = "v"
			}
			return m
		}(),
		"map of big":      map[string]string{"a": strings.Repeat("y", 2*spillAt)},
		"neg zero":        math.Copysign(0, -1),
		"nan":             math.NaN(),
		"inf":             math.Inf(-1),
		"f32 nan":         float32(math.NaN()),
		"min int8":        int8(math.MinInt8),
		"max uint":        uint64(math.MaxUint64),
		"text":            rText{3},
		"text pointer":    &rText{4},
		"nil text ptr":    nilText,
		"ptr text":        &rPtrText{5},
		"ptr text value":  rPtrText{6},
		"text error":      rTextErr{},
		"text in struct":  struct{ T rTextErr }{},
		"hidden text err": struct{ t rTextErr }{},
		"secret":          Conceal("tok"),
		"secret time":     Conceal(time.Unix(0, 0).UTC()),
		"func":            func() {},
		"nil func":        (func())(nil),
		"chan":            make(chan int),
		"func field":      struct{ F func() }{},
		"func in map":     map[string]any{"f": func() {}},
		"func in slice":   []any{1, func() {}},
		"unsafe pointer":  unsafe.Pointer(&one),
		"deep":            deep,
		"ring":            ring,
		"deep in map":     map[string]*rList{"x": deep},
		"embedded text":   struct{ time.Time }{time.Unix(5, 0).UTC()},
		"direct struct":   struct{ P *int }{&one},
		"direct array":    [1]*int{&one},
		"direct map":      map[int]int{1: 2},
		"iface direct":    []any{struct{ P *int }{&one}, [1]*int{nil}, map[int]int{}},
		"error":           errors.New("boom"),
		"empty struct":    struct{}{},
		"zero array":      [0]int{},
		"named bytes":     rBytes("xyz"),
		"byte array":      rByteA{1, 2, 3, 4},
		"stringer":        struct{ S fmt.Stringer }{rStr("s")},
		"text iface":      struct{ TM textIface }{rText{7}},
		"hidden tm iface": struct{ tm textIface }{rText{8}},
	}
	for name, x := range cases {
		t.Run(name, func(t *testing.T) {
			requireSameDigest(t, x, name)
			if v := reflect.ValueOf(x); v.Kind() == reflect.Struct && v.NumField() > 0 {
				requireSameFields(t, v, name)
			}
		})
	}
	// DigestStructFields of structs reached through embedded unexported
	// fields, whose exported fields reflect lets through, and through
	// hidden ones, whose it does not.
	type hasText struct{ T rText }
	type embedsText struct{ hasText }
	type deeper struct{ embedsText }
	type viaPtr struct{ *hasText }
	type hidesText struct{ h hasText }
	for name, v := range map[string]reflect.Value{
		"embedded":          reflect.ValueOf(embedsText{hasText{rText{1}}}).Field(0),
		"embedded twice":    reflect.ValueOf(deeper{embedsText{hasText{rText{2}}}}).Field(0),
		"embedded twice 2":  reflect.ValueOf(deeper{embedsText{hasText{rText{2}}}}).Field(0).Field(0),
		"embedded pointer":  reflect.ValueOf(viaPtr{&hasText{rText{3}}}).Field(0).Elem(),
		"embedded, address": reflect.ValueOf(&embedsText{hasText{rText{4}}}).Elem().Field(0),
		"hidden":            reflect.ValueOf(hidesText{hasText{rText{5}}}).Field(0),
		"hidden, address":   reflect.ValueOf(&hidesText{hasText{rText{6}}}).Elem().Field(0),
		"embedded outer":    reflect.ValueOf(deeper{embedsText{hasText{rText{7}}}}),
	} {
		requireSameFields(t, v, name)
	}

	// A nil interface whose type has MarshalText: the reflective digest
	// panicked on it; the compiled one writes nil, as for any interface.
	d1, err := Digest(struct{ TM textIface }{})
	require.NoError(t, err)
	d2, err := Digest(struct{ TM textIface }{rText{1}})
	require.NoError(t, err)
	require.NotEqual(t, d1, d2)
}

// textIface is an interface type with MarshalText.
type textIface interface{ MarshalText() ([]byte, error) }

// Different keys with the same encoding (NaN, pointers to equal values)
// give one digest, whatever order the map yields them in: the reflective
// digest's depended on it.
func TestDigestOfTiedKeysIsStable(t *testing.T) {
	m := map[float64]int{}
	for i := range 20 {
		m[math.NaN()] = i
	}
	a, b := 1, 1
	pm := map[*int]string{&a: "a", &b: "b"}
	first, err := Digest(m)
	require.NoError(t, err)
	firstP, err := Digest(pm)
	require.NoError(t, err)
	for range 50 {
		got, err := Digest(m)
		require.NoError(t, err)
		require.Equal(t, first, got)
		got, err = Digest(pm)
		require.NoError(t, err)
		require.Equal(t, firstP, got)
	}
}

// Digests run concurrently, compiling the same types at once.
func TestDigestConcurrent(t *testing.T) {
	type fresh struct {
		L *rList
		M map[string][]rOuter
	}
	x := fresh{L: &rList{Val: 1, Next: &rList{Val: 2}}, M: map[string][]rOuter{"a": {{}}}}
	z := &randomizer{r: rand.New(rand.NewPCG(1, 2))}
	z.fill(reflect.ValueOf(&x.M["a"][0]).Elem(), 0, false)
	want, err := refDigest(x)
	require.NoError(t, err)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				got, err := Digest(x)
				if err == nil && got != want {
					err = fmt.Errorf("got %s, want %s", got, want)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
}

// The digest's text is "sha256:" and the hex of the sum, as
// encoding/hex writes it.
func TestAppendText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		var sum [32]byte
		for i := range sum {
			sum[i] = byte(r.IntN(256))
		}
		require.Equal(t, "pre"+"sha256:"+hex.EncodeToString(sum[:]), string(appendText([]byte("pre"), &sum)))
	}
}
