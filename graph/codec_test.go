package graph

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
)

type codecOut struct {
	Name   string
	Token  attr.Secret[string]
	Peers  []string
	Ports  map[string]int
	Nested struct{ At time.Time }
}

type codecIface struct {
	Any any
}

func TestOutputCodecRoundTrip(t *testing.T) {
	var cs outputCodecs
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	for _, tc := range []struct {
		name string
		vals []any
	}{
		{"struct with a secret, several values on one encoder", []any{
			codecOut{Name: "n1", Token: attr.Conceal("t1"), Peers: []string{"a"}, Ports: map[string]int{"x": 1}},
			codecOut{Name: "n2", Token: attr.Conceal("t2"), Nested: struct{ At time.Time }{at}},
			codecOut{},
		}},
		{"interface fields use a fresh encoder", []any{codecIface{Any: "text"}, codecIface{Any: 42}}},
		{"no exported fields stores nothing", []any{struct{ x int }{1}, struct{}{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range tc.vals {
				b, err := cs.encode(v)
				require.NoError(t, err)
				got, err := decodeOutput(b, reflect.TypeOf(v))
				require.NoError(t, err)
				if reflect.TypeOf(v).NumField() > 0 && !hasExported(reflect.TypeOf(v)) {
					require.Nil(t, b)
					require.Equal(t, reflect.Zero(reflect.TypeOf(v)).Interface(), got)
					continue
				}
				if o, ok := v.(codecOut); ok {
					g := got.(codecOut)
					require.Equal(t, o.Token.Reveal(), g.Token.Reveal())
					o.Token, g.Token = attr.Secret[string]{}, attr.Secret[string]{}
					require.Equal(t, o.Name, g.Name)
					require.Equal(t, o.Peers, g.Peers)
					require.True(t, o.Nested.At.Equal(g.Nested.At))
					continue
				}
				require.Equal(t, v, got)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	at := time.Unix(0, 1763773323000000000)
	for _, r := range []*record{
		{ID: "a@n1", State: StatePending, At: at},
		{ID: "svc", State: StateFailed, Attempt: 3, Error: "boom", Reason: "new", At: at, Duration: time.Second},
		{ID: "b@n2", State: StateSucceeded, Attempt: 1, At: at, Last: &success{Version: "1", Digest: "sha256:x",
			Fields: fieldsOf(map[string]string{"A": "d1", "B": "d2"}), Peers: map[string][]string{"Peers": {"n1", "n2"}},
			Output: []byte{outPlain, 1, 2, 3}, Duration: time.Millisecond, At: at}},
	} {
		var got record
		require.NoError(t, got.unmarshal(r.marshal(nil)))
		require.Equal(t, *r, got)
	}
	// A run's field digests come in the role's field order; the record
	// holds them in name order, byte for byte as when they were a map.
	run := &record{ID: "c@n1", State: StateSucceeded, At: at, Last: &success{Digest: "sha256:y",
		Fields: fieldDigests{names: []string{"Zone", "Addr"}, digs: []string{"dz", "da"}}}}
	sorted := &record{ID: "c@n1", State: StateSucceeded, At: at, Last: &success{Digest: "sha256:y",
		Fields: fieldsOf(map[string]string{"Zone": "dz", "Addr": "da"})}}
	require.Equal(t, sorted.marshal(nil), run.marshal(nil))
	var back record
	require.NoError(t, back.unmarshal(run.marshal(nil)))
	require.Equal(t, *sorted, back)
	var got record
	require.ErrorContains(t, got.unmarshal([]byte{9}), "unknown record format 9")
	full := (&record{ID: "x", Last: &success{Version: "v"}}).marshal(nil)
	require.Error(t, got.unmarshal(full[:len(full)-3]), "truncated")
}
