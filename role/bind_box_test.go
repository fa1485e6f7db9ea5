package role_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
)

// Bind fills the input in place and hands it out without a copy: the
// value is right whatever the input's shape — empty, pointer-shaped
// (kept in the interface's data word itself), or larger.
func TestBindInputShapes(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.9")
	vs := attr.NewValues()
	require.NoError(t, vs.SetAny("box.addr", &addr, attr.FromSpec(attr.LayerDeployment, "x.hcl", 1)))
	require.NoError(t, vs.SetAny("box.labels", map[string]string{"a": "b"}, attr.FromSpec(attr.LayerDeployment, "x.hcl", 2)))
	env := role.Env{Node: "n1", Attrs: vs, Outputs: []role.Output{{Role: "cert", Node: "n1", Value: CertOut{"pem"}}}}

	type ptrIn struct {
		Addr *netip.Addr `attr:"box.addr"`
	}
	type mapIn struct {
		Labels map[string]string `attr:"box.labels"`
	}
	type mixedIn struct {
		Cert   role.Same[CertOut]
		Labels map[string]string `attr:"box.labels"`
		Addr   *netip.Addr       `attr:"box.addr"`
	}
	in := bindWith[struct{}](t, env)
	require.Equal(t, struct{}{}, in)
	p := bindWith[ptrIn](t, env)
	require.Equal(t, &addr, p.Addr)
	m := bindWith[mapIn](t, env)
	require.Equal(t, map[string]string{"a": "b"}, m.Labels)
	x := bindWith[mixedIn](t, env)
	require.Equal(t, mixedIn{Cert: role.Same[CertOut]{Value: CertOut{"pem"}, Role: "cert"}, Labels: m.Labels, Addr: &addr}, x)

	// Each Bind gives a value of its own.
	y := bindWith[mixedIn](t, env)
	y.Cert.Value.PEM = "changed"
	require.Equal(t, "pem", x.Cert.Value.PEM)
}

func bindWith[In any](t *testing.T, env role.Env) In {
	t.Helper()
	def := role.Of(role.Func(role.Meta{Name: "box"}, func(ctx context.Context, rc *role.Context, in In) (struct{}, error) {
		return struct{}{}, nil
	}))
	require.NoError(t, def.Err())
	got, err := def.BindInput(env)
	require.NoError(t, err)
	in, ok := got.(In)
	require.True(t, ok, "Bind gave a %T", got)
	// What Run receives is the same value.
	_, err = def.Run(context.Background(), role.NewContext(role.ContextOptions{Role: "box"}), got)
	require.NoError(t, err)
	return in
}

// An input that cannot be digested is an error naming the role and the
// field.
func TestDigestInputsNamesTheField(t *testing.T) {
	type Hook struct{ F func() }
	type In struct {
		Cert role.Same[CertOut]
		Hook role.Same[Hook]
	}
	def := role.Of(role.Func(role.Meta{Name: "hooked"}, func(ctx context.Context, rc *role.Context, in In) (struct{}, error) {
		return struct{}{}, nil
	}))
	_, _, err := def.DigestInputs(In{})
	require.EqualError(t, err, `role "hooked": input Hook: attr: cannot digest a value of type func()`)
	_, err = def.DigestInputsInto(In{}, nil, make([]string, 2))
	require.EqualError(t, err, `role "hooked": input Hook: attr: cannot digest a value of type func()`)
}

// InitContext overwrites all a Context held: a reused one forgets the
// last run's progress and logger.
func TestInitContextOverwrites(t *testing.T) {
	var said []string
	var c role.Context
	rc := role.InitContext(&c, role.ContextOptions{Role: "first", Attempt: 2, Progress: func(m string) { said = append(said, m) }})
	require.Same(t, &c, rc)
	rc.Progress("step %d", 1)
	rc.Log().Info("first")
	rc = role.InitContext(&c, role.ContextOptions{Role: "second", Progress: func(m string) { said = append(said, "2:"+m) }})
	require.Equal(t, "second", rc.Role())
	require.Equal(t, 1, rc.Attempt())
	require.NotNil(t, rc.Services())
	rc.Progress("step %d", 1) // not a repeat: the last report is forgotten
	require.Equal(t, []string{"step 1", "2:step 1"}, said)
}
