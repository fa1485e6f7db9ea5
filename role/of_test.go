package role_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

type sumIn struct {
	A role.Same[PeerURLOut]
	B role.All[PeerURLOut]
}

type sumOut struct{ N int }

// sumRole is a role written as a type; sumFunc is the same role made from
// a method value with role.Func; sumPtr has pointer receivers. Of infers
// In and Out from each and calls Run directly.
type sumRole struct{}

func (sumRole) Meta() role.Meta { return role.Meta{Name: "sum"} }
func (sumRole) Run(_ context.Context, rc *role.Context, in sumIn) (sumOut, error) {
	if in.A.Value.Name == "fail" {
		return sumOut{N: 1}, errors.New("failed on cue")
	}
	rc.Log().Info("summing", "peers", len(in.B))
	return sumOut{N: len(in.B) + rc.Attempt()}, nil
}

var sumFunc = role.Func(role.Meta{Name: "sum"}, sumRole{}.Run)

type sumPtr struct{ sumRole }

func (*sumPtr) Meta() role.Meta { return role.Meta{Name: "sum"} }
func (p *sumPtr) Run(ctx context.Context, rc *role.Context, in sumIn) (sumOut, error) {
	return p.sumRole.Run(ctx, rc, in)
}

// A role registered with Of — a type, a pointer, a role.Func — binds, runs
// (errors and all), logs through its tagged logger, and is refused an
// input of the wrong type; BindInput gives what Bind gives, and an input
// without fields has the digest of no fields.
func TestOfBindRunLogDigest(t *testing.T) {
	outs := []role.Output{
		{Role: "p", Node: "n2", Value: PeerURLOut{"n2", "u2"}},
		{Role: "p", Node: "n1", Value: PeerURLOut{"n1", "u1"}},
	}
	for _, tc := range []struct {
		name string
		d    *role.Def
	}{{"type", role.Of(sumRole{})}, {"pointer", role.Of(&sumPtr{})}, {"func of a method value", role.Of(sumFunc)}} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			require.NoError(t, d.Err())
			require.Equal(t, reflect.TypeFor[sumIn](), d.In())
			require.Equal(t, reflect.TypeFor[sumOut](), d.Out())
			env := role.Env{Node: "n1", Outputs: outs}
			in, bindings, err := d.Bind(env)
			require.NoError(t, err)
			in2, err := d.BindInput(env)
			require.NoError(t, err)
			require.Equal(t, in, in2)
			require.Len(t, bindings, 2)
			require.Equal(t, "B <- output of p on n1, output of p on n2", bindings[1].String())
			require.Equal(t, []string{"n1", "n2"}, in.(sumIn).B.Nodes(), "All is in node order")

			var logs bytes.Buffer
			rc := role.NewContext(role.ContextOptions{Role: "sum", Node: &provider.Node{Name: "n1"}, Attempt: 2,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			out, err := d.Run(context.Background(), rc, in)
			require.NoError(t, err)
			require.Equal(t, sumOut{N: 4}, out)
			require.Contains(t, logs.String(), "role=sum node=n1 peers=2")
			require.Same(t, rc.Log(), rc.Log(), "the tagged logger is built once")

			failing := in.(sumIn)
			failing.A.Value.Name = "fail"
			out, err = d.Run(context.Background(), rc, failing)
			require.EqualError(t, err, "failed on cue")
			require.Nil(t, out, "no output with an error")
			_, err = d.Run(context.Background(), rc, struct{}{})
			require.ErrorContains(t, err, "want role_test.sumIn")
		})
	}
	none := role.Of(role.Func(role.Meta{Name: "none"}, func(context.Context, *role.Context, struct{}) (sumOut, error) { return sumOut{}, nil }))
	total, fields, err := none.DigestInputs(struct{}{})
	require.NoError(t, err)
	want, err := attr.DigestFields(nil, nil)
	require.NoError(t, err)
	require.Equal(t, want, total)
	require.Empty(t, fields)
}
