package attr_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
)

// DigestStructFields must give exactly the strings of Digest per field and
// DigestFields over them: journals store those digests.
func TestDigestStructFieldsMatchesDigest(t *testing.T) {
	type inner struct{ A, b int }
	type in struct {
		S    string
		N    int
		M    map[string][]int
		Any  any
		Nil  any
		Err  error
		Addr netip.Addr
		P    *inner
		T    attr.Secret[string]
	}
	cases := []in{
		{},
		{S: "x", N: 3, M: map[string][]int{"b": {2}, "a": {1}}, Any: inner{A: 1}, Err: fmt.Errorf("boom"),
			Addr: netip.MustParseAddr("10.0.0.1"), P: &inner{A: 2, b: 3}, T: attr.Conceal("tok")},
		{Any: 7, P: &inner{}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			v := reflect.ValueOf(c)
			var idx []int
			var names []string
			var want []string
			var vals []any
			for f := range v.NumField() {
				idx = append(idx, f)
				names = append(names, v.Type().Field(f).Name)
				dg, err := attr.Digest(v.Field(f).Interface())
				require.NoError(t, err)
				want = append(want, dg)
				vals = append(vals, dg)
			}
			wantTotal, err := attr.DigestFields(names, vals)
			require.NoError(t, err)
			per := make([]string, len(idx))
			total, err := attr.DigestStructFields(v, idx, names, per)
			require.NoError(t, err)
			require.Equal(t, want, per)
			require.Equal(t, wantTotal, total)
		})
	}
	_, err := attr.DigestStructFields(reflect.ValueOf(struct{ F func() }{}), []int{0}, []string{"F"}, make([]string, 1))
	require.ErrorContains(t, err, "cannot digest")
}
