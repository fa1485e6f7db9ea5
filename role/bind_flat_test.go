package role_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/role"
)

type twoMissingIn struct {
	Name  string `attr:"greet.name"`
	Other string `attr:"greet.other"`
}

// Several failures of one Bind read flat, one a line, and each is still a
// *role.BindError.
func TestBindErrorsAreFlat(t *testing.T) {
	def := role.Of(role.Func(role.Meta{Name: "greet"}, func(ctx context.Context, rc *role.Context, in twoMissingIn) (struct{}, error) {
		return struct{}{}, nil
	}))
	_, _, err := def.Bind(role.Env{Node: "web-1"})
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 2, err.Error())
	require.True(t, strings.HasPrefix(lines[0], `role "greet" on web-1: input Name (string, attr "greet.name"): attribute "greet.name" has no value`), lines[0])
	require.True(t, strings.HasPrefix(lines[1], `role "greet" on web-1: input Other`), lines[1])
	var be *role.BindError
	require.ErrorAs(t, err, &be)
	require.Equal(t, "Name (string, attr \"greet.name\")", be.Field)
}
