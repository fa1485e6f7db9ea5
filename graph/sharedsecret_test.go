package graph_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// MemberSecretOut is a member's output with a secret in it, as an etcd
// member with its peer password or a worker with its join token.
type MemberSecretOut struct {
	Addr  string
	Token attr.Secret[string]
}

// sharedSecrets is a deployment where every node's "mesh" role takes
// role.All of every member's output — a shared aggregate of secrets.
type sharedSecrets struct {
	mu     sync.Mutex
	tokens map[string]string   // the token each member outputs, by node
	got    map[string][]string // the tokens each mesh saw, by node
	runs   map[string]int
	kek    *seal.KEK
}

func (s *sharedSecrets) deployment() *graph.Deployment {
	member := role.Func(role.Meta{Name: "member", Version: "1"}, func(ctx context.Context, rc *role.Context, _ struct{}) (MemberSecretOut, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.runs["member@"+rc.Node().Name]++
		return MemberSecretOut{Addr: rc.Node().Name + ":2380", Token: attr.Conceal(s.tokens[rc.Node().Name])}, nil
	})
	mesh := role.Func(role.Meta{Name: "mesh", Version: "1"}, func(ctx context.Context, rc *role.Context, in struct {
		Peers role.All[MemberSecretOut]
	}) (struct{}, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.runs["mesh@"+rc.Node().Name]++
		var seen []string
		for _, p := range in.Peers {
			seen = append(seen, p.Node+"="+p.Value.Token.Reveal())
		}
		s.got[rc.Node().Name] = seen
		return struct{}{}, nil
	})
	d := graph.NewDeployment("shared-secrets")
	d.Bind(d.Pool("p", nodes("n1", "n2", "n3")...), role.Of(member), role.Of(mesh))
	d.UseKEK(s.kek)
	return d
}

// plainDigest finds a digest that is not keyed ("sha256:" not preceded
// by "hmac-").
var plainDigest = regexp.MustCompile(`(^|[^-])sha256:[0-9a-f]{16}`)

// TestSharedAggregateOfSecrets: an All input over outputs that hold
// secrets is one shared aggregate like any other, and its digest is keyed
// before it is journaled: every consumer's record holds only keyed
// digests, no token rests in plain text anywhere in the store, every
// consumer gets every peer's secret, a second plan is converged, and a
// change of one member's secret re-runs that member and every consumer —
// the keyed digest still tells the change.
func TestSharedAggregateOfSecrets(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	s := &sharedSecrets{
		tokens: map[string]string{"n1": "tok-one-must-stay-sealed", "n2": "tok-two-must-stay-sealed", "n3": "tok-three-must-stay-sealed"},
		got:    map[string][]string{}, runs: map[string]int{}, kek: testKEK(t),
	}
	_, res, err := planApply(t, s.deployment(), st, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 6, res.Count(graph.StateSucceeded))
	want := []string{"n1=tok-one-must-stay-sealed", "n2=tok-two-must-stay-sealed", "n3=tok-three-must-stay-sealed"}
	for _, n := range []string{"n1", "n2", "n3"} {
		require.Equal(t, want, s.got[n], "mesh@%s", n)
	}

	scan := func() {
		t.Helper()
		ents, _, err := st.List(ctx, "mason/graph/shared-secrets/")
		require.NoError(t, err)
		meshes := 0
		for _, e := range ents {
			for _, tok := range s.tokens {
				require.False(t, bytes.Contains(e.Value, []byte(tok)), "a token in plain text at %s", e.Key)
			}
			if strings.Contains(e.Key, "/nr/mesh@") {
				meshes++
				require.Contains(t, string(e.Value), "hmac-sha256:", e.Key)
				require.False(t, plainDigest.Match(e.Value), "a plain digest in %s: %q", e.Key, plainDigest.Find(e.Value))
			}
		}
		require.Equal(t, 3, meshes, "the scan reads every consumer's record")
	}
	scan()
	ents, err := graph.ReadJournal(ctx, st, "shared-secrets")
	require.NoError(t, err)
	for _, e := range ents {
		if strings.HasPrefix(e.ID, "mesh@") {
			require.True(t, strings.HasPrefix(e.Digest, "hmac-sha256:"), "%s: %s", e.ID, e.Digest)
		}
	}

	p, err := graph.NewPlan(ctx, s.deployment(), st)
	require.NoError(t, err)
	require.True(t, p.Converged(), p.String())

	// n2's token changes: member@n2 is forced to pick it up; every mesh
	// then sees a changed aggregate.
	s.tokens["n2"] = "tok-two-rotated-must-stay-sealed"
	p, res, err = planApply(t, s.deployment(), st, graph.Options{}, graph.Force("member@n2"))
	require.NoError(t, err)
	require.Equal(t, 4, res.Count(graph.StateSucceeded), p.String())
	for _, n := range []string{"n1", "n2", "n3"} {
		require.Equal(t, "input Peers changed", state(t, res, "mesh@"+n).Reason, "mesh@%s", n)
		require.Equal(t, "n2=tok-two-rotated-must-stay-sealed", s.got[n][1])
	}
	require.Equal(t, 1, s.runs["member@n1"])
	require.Equal(t, 2, s.runs["member@n2"])
	scan()
}

var _ store.Store // the scan reads the store's raw values
