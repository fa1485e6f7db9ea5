package role_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/role"
)

type badUndo struct{}

func (badUndo) Meta() role.Meta { return role.Meta{Name: "bad-undo"} }
func (badUndo) Run(context.Context, *role.Context, struct{}) (CertOut, error) {
	return CertOut{}, nil
}

// Undo takes the input instead of the last output: it would never run.
func (badUndo) Undo(context.Context, *role.Context, struct{}) error { return nil }

func TestUndo(t *testing.T) {
	ctx := context.Background()
	rc := role.NewContext(role.ContextOptions{Role: "x"})

	def := role.Of(badUndo{})
	require.ErrorContains(t, def.Err(), `role "bad-undo": Undo has signature func(context.Context, *role.Context, struct {}) error; want func(context.Context, *role.Context, role_test.CertOut) error`)

	plain := role.Of(role.Func(role.Meta{Name: "plain"}, func(context.Context, *role.Context, struct{}) (CertOut, error) { return CertOut{}, nil }))
	require.NoError(t, plain.Err())
	require.False(t, plain.HasUndo())
	require.NoError(t, plain.Undo(ctx, rc, CertOut{}), "nothing to undo")

	var got string
	undoable := role.Of(role.Func(role.Meta{Name: "u"}, func(context.Context, *role.Context, struct{}) (CertOut, error) { return CertOut{}, nil }).
		WithUndo(func(_ context.Context, _ *role.Context, last CertOut) error { got = last.PEM; return nil }))
	require.NoError(t, undoable.Err())
	require.True(t, undoable.HasUndo())
	require.NoError(t, undoable.Undo(ctx, rc, CertOut{PEM: "pem"}))
	require.Equal(t, "pem", got)
	require.ErrorContains(t, undoable.Undo(ctx, rc, PeerURLOut{}), `role "u": Undo needs the last output of type role_test.CertOut, got role_test.PeerURLOut`)
}
