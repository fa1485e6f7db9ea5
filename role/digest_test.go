package role_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
)

// DigestInputsInto writes, in DigestedInputs order, the digests
// DigestInputs maps by name, with the same total; digests the caller
// knows are taken as they are; a wrong number of digests is an error.
func TestDigestInputsInto(t *testing.T) {
	m := role.Of(member{})
	in, _, err := m.Bind(envFor("n1", 2379))
	require.NoError(t, err)
	total, fields, err := m.DigestInputs(in)
	require.NoError(t, err)

	names := m.DigestedInputs()
	require.Len(t, names, len(fields))
	per := make([]string, len(names))
	got, err := m.DigestInputsInto(in, nil, per)
	require.NoError(t, err)
	require.Equal(t, total, got)
	for k, name := range names {
		require.Equal(t, fields[name], per[k], "field %s", name)
	}

	// A known digest is used as it is: the same one gives the same total,
	// another one another total.
	known := map[string]string{"Peers": fields["Peers"]}
	got, err = m.DigestInputsInto(in, known, per)
	require.NoError(t, err)
	require.Equal(t, total, got)
	other, err := attr.Digest("something else")
	require.NoError(t, err)
	got, err = m.DigestInputsInto(in, map[string]string{"Peers": other}, per)
	require.NoError(t, err)
	require.NotEqual(t, total, got)
	for k, name := range names {
		if name == "Peers" {
			require.Equal(t, other, per[k])
		}
	}

	_, err = m.DigestInputsInto(in, nil, make([]string, len(names)+1))
	require.ErrorContains(t, err, "DigestInputsInto")
	_, err = m.DigestInputsInto(42, nil, per)
	require.ErrorContains(t, err, "input has type int")
}

// A broken definition says so instead of digesting nothing.
func TestDigestInputsOfABrokenDef(t *testing.T) {
	type In struct {
		Port int `attr:"port"`
	}
	def := role.Of(role.Func(role.Meta{Name: "broken"}, func(ctx context.Context, rc *role.Context, in In) (struct{}, error) {
		return struct{}{}, nil
	}))
	require.Error(t, def.Err())
	_, err := def.DigestInputsInto(In{}, nil, nil)
	require.ErrorContains(t, err, "invalid attribute name")
	_, _, err = def.DigestInputs(In{})
	require.ErrorContains(t, err, "invalid attribute name")
}
