package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
)

type SecretOut struct{ Token attr.Secret[string] }
type SecretIn struct{ T role.Same[SecretOut] }

func TestSubscribers(t *testing.T) {
	const secret = "s3cr3t-join-token"
	f := newFakes()
	f.perm["a@n1"] = true
	issue := role.Func(role.Meta{Name: "issue"}, func(ctx context.Context, rc *role.Context, _ struct{}) (SecretOut, error) {
		return SecretOut{Token: attr.Conceal(secret)}, nil
	})
	join := role.Func(role.Meta{Name: "join"}, func(ctx context.Context, rc *role.Context, in SecretIn) (struct{}, error) {
		rc.Log().Info("joining", "token", in.T.Value.Token) // a careless role: still redacted
		if in.T.Value.Token.Reveal() != secret {
			return struct{}{}, context.Canceled
		}
		return struct{}{}, nil
	})
	var jbuf, lbuf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&lbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := graph.NewDeployment("subs")
	d.UseLogger(logger)
	d.UseKEK(testKEK(t)) // its outputs hold a secret
	d.Bind(d.Pool("p", nodes("n1", "n2")...), f.roleA(role.Meta{}), f.roleB(role.Meta{}), role.Of(issue), role.Of(join))
	st := memStore(t)
	_, res, err := planApply(t, d, st, graph.Options{Events: graph.Subscribers(graph.JSONLines(&jbuf), graph.LogSubscriber(logger))})
	require.Error(t, err)
	require.Equal(t, 6, res.Count(graph.StateSucceeded))

	// JSON lines: one object per transition.
	seen := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(jbuf.String()), "\n") {
		var e struct {
			ID        string `json:"id"`
			State     string `json:"state"`
			BlockedBy string `json:"blocked_by"`
			Error     string `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		seen[e.ID] = append(seen[e.ID], e.State)
		if e.ID == "b@n1" && e.State == "blocked" {
			require.Equal(t, "a@n1", e.BlockedBy)
		}
		if e.State == "failed" {
			require.Equal(t, "a@n1: disk is read-only", e.Error)
		}
	}
	require.Equal(t, []string{"pending", "running", "failed"}, seen["a@n1"])
	require.Equal(t, []string{"pending", "blocked"}, seen["b@n1"])
	require.Equal(t, []string{"pending", "running", "succeeded"}, seen["join@n2"])

	require.Contains(t, lbuf.String(), `level=ERROR msg="a@n1 failed" deployment=subs id=a@n1 role=a node=n1 state=failed attempt=1`)
	require.Contains(t, lbuf.String(), `level=WARN msg="b@n1 blocked" deployment=subs id=b@n1 role=b node=n1 state=blocked blocked_by=a@n1 reason="blocked by a@n1: a@n1: disk is read-only"`)

	// The secret reached the role, and nothing printed it or wrote it
	// in plain text.
	for name, out := range map[string]string{"json": jbuf.String(), "log": lbuf.String()} {
		require.NotContains(t, out, secret, name)
	}
	require.Contains(t, lbuf.String(), "token=[redacted]")
	ents, _, err := st.List(context.Background(), "mason/graph/subs/nr/issue@n1")
	require.NoError(t, err)
	require.Len(t, ents, 1)
	require.NotContains(t, string(ents[0].Value), secret, "the journal keeps secrets sealed (dependents still resume: secrets_test.go)")
}

func TestWriteDOTStates(t *testing.T) {
	f := newFakes()
	f.always["a@n2"] = true
	d := graph.NewDeployment("dot")
	chain(f, d, "n1", "n2")
	p, res, err := planApply(t, d, memStore(t), graph.Options{})
	require.Error(t, err)
	var buf bytes.Buffer
	require.NoError(t, graph.WriteDOT(&buf, p, res))
	out := buf.String()
	for _, want := range []string{
		`"a@n2" [label="a\nfailed", fillcolor="#f28b82"`,
		`"b@n2" [label="b\nblocked", fillcolor="#f9c89b", tooltip="blocked: blocked by a@n2: a@n2: exploded"]`,
		`"a@n1" [label="a\nsucceeded", fillcolor="#9be59b"`,
		`"a@n2" -> "agg@n1";`,
		`subgraph cluster_1 {`,
	} {
		require.Contains(t, out, want)
	}
}
