package graph_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// testKEK is a new random key-encryption key.
func testKEK(t testing.TB) *seal.KEK {
	t.Helper()
	k, err := seal.Generate()
	require.NoError(t, err)
	return k
}

// The secrets of the sealing tests: a join token a role outputs, a
// password set as a secret attribute, and a PIN set under a key declared
// secret but taken by a plain string field.
const (
	sealToken    = "SWMTKN-1-t0ken-that-must-never-rest-in-plain-text"
	sealPassword = "hunter2-password"
	sealPIN      = "pin-271828-1828"
)

var (
	sealPasswordKey = attr.New[attr.Secret[string]]("test.db_password")
	sealPINKey      = attr.New[string]("test.pin").AsSecret()
)

type (
	// SealTokenOut is what the token role outputs: an address and a secret.
	SealTokenOut struct {
		Addr  string
		Token attr.Secret[string]
	}
	// SealJoinIn is what the join role takes: the token role's output, a
	// secret attribute and a plain field that receives a secret value.
	SealJoinIn struct {
		Mgr      role.One[SealTokenOut]
		Password attr.Secret[string] `attr:"test.db_password"`
		PIN      string              `attr:"test.pin"`
	}
)

// sealRoles records what the join role received, per node.
type sealRoles struct {
	mu   sync.Mutex
	got  map[string][3]string
	runs map[string]int
}

func (s *sealRoles) deployment(name string, k *seal.KEK) *graph.Deployment {
	tok := role.Func(role.Meta{Name: "tok", Version: "1", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (SealTokenOut, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.runs["tok"]++
			return SealTokenOut{Addr: rc.Node().Name + ":2377", Token: attr.Conceal(sealToken)}, nil
		})
	join := role.Func(role.Meta{Name: "join", Version: "1"},
		func(ctx context.Context, rc *role.Context, in SealJoinIn) (struct{}, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.runs["join"]++
			s.got[rc.Node().Name] = [3]string{in.Mgr.Value.Token.Reveal(), in.Password.Reveal(), in.PIN}
			return struct{}{}, nil
		})
	d := graph.NewDeployment(name)
	d.Bind(d.Pool("p", nodes("n1", "n2")...), role.Of(tok), role.Of(join))
	graph.Set(d, sealPasswordKey, attr.Conceal(sealPassword))
	graph.Set(d, sealPINKey, sealPIN)
	if k != nil {
		d.UseKEK(k)
	}
	return d
}

func newSealRoles() *sealRoles {
	return &sealRoles{got: map[string][3]string{}, runs: map[string]int{}}
}

// needles are the forms a secret could be found in at rest: raw, base64
// and hex, and the plain digests of the secret inputs.
func needles(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name, s := range map[string]string{"token": sealToken, "password": sealPassword, "pin": sealPIN} {
		out[name+" raw"] = []byte(s)
		out[name+" base64"] = []byte(base64.StdEncoding.EncodeToString([]byte(s)))
		out[name+" base64url"] = []byte(base64.RawURLEncoding.EncodeToString([]byte(s)))
		out[name+" hex"] = []byte(hex.EncodeToString([]byte(s)))
	}
	for name, v := range map[string]any{"password": attr.Conceal(sealPassword), "pin": sealPIN} {
		dg, err := attr.Digest(v)
		require.NoError(t, err)
		out[name+" plain digest"] = []byte(strings.TrimPrefix(dg, "sha256:"))
	}
	return out
}

func requireNoSecret(t *testing.T, where string, haystack []byte) {
	t.Helper()
	require.NotEmpty(t, haystack, where)
	for form, needle := range needles(t) {
		require.False(t, bytes.Contains(haystack, needle), "%s found in %s", form, where)
	}
}

// sealRun applies the deployment once, then checks what a user relies on:
// every join got the secrets; a second plan is converged (keyed digests
// are stable, sealed outputs open); a forced join gets the token from the
// journal; ReadJournal works without a key and says the output is sealed.
func sealRun(t *testing.T, st store.Store, k *seal.KEK) {
	ctx := context.Background()
	s := newSealRoles()
	_, res, err := planApply(t, s.deployment("secrets", k), st, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 3, res.Count(graph.StateSucceeded))
	want := [3]string{sealToken, sealPassword, sealPIN}
	require.Equal(t, map[string][3]string{"n1": want, "n2": want}, s.got)

	p, err := graph.NewPlan(ctx, s.deployment("secrets", k), st)
	require.NoError(t, err)
	require.Equal(t, 3, p.Count(graph.ActionSkip), p.String())

	s.got = map[string][3]string{}
	_, res, err = planApply(t, s.deployment("secrets", k), st, graph.Options{}, graph.Force("join"))
	require.NoError(t, err)
	require.Equal(t, graph.StateSkipped, state(t, res, "tok@n1").State)
	require.Equal(t, map[string][3]string{"n1": want, "n2": want}, s.got, "the token comes from the sealed journal")
	require.Equal(t, 1, s.runs["tok"])

	ents, err := graph.ReadJournal(ctx, st, "secrets")
	require.NoError(t, err)
	require.Len(t, ents, 3)
	for _, e := range ents {
		require.False(t, e.Succeeded.IsZero(), e.ID)
		require.Equal(t, e.ID == "tok@n1", e.SealedOutput, e.ID)
		if strings.HasPrefix(e.ID, "join@") {
			require.True(t, strings.HasPrefix(e.Digest, "hmac-sha256:"), "%s: %s", e.ID, e.Digest)
		}
	}
}

// sealRefusals: another key and no key are refused before anything runs,
// and nothing is written.
func sealRefusals(t *testing.T, st store.Store, other *seal.KEK) {
	ctx := context.Background()
	before, _, err := st.List(ctx, "")
	require.NoError(t, err)
	s := newSealRoles()

	_, err = graph.NewPlan(ctx, s.deployment("secrets", other), st)
	require.ErrorIs(t, err, seal.ErrWrongKey)
	require.ErrorContains(t, err, "deployment secrets")
	require.ErrorContains(t, err, other.Source())
	require.ErrorContains(t, err, "is not the one the state was sealed with")
	t.Logf("wrong key: %v", err)

	_, err = graph.NewPlan(ctx, s.deployment("secrets", nil), st)
	require.ErrorIs(t, err, seal.ErrNoKey)
	var nk *graph.NoKEKError
	require.True(t, errors.As(err, &nk))
	require.Equal(t, "secrets", nk.Deployment)
	require.ErrorContains(t, err, "Deployment.UseKEK")
	t.Logf("no key: %v", err)

	after, _, err := st.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing written")
	require.Zero(t, s.runs["tok"]+s.runs["join"], "nothing ran")
}

func keyFile(t *testing.T, name string) *seal.KEK {
	k, err := seal.CreateFile(filepath.Join(t.TempDir(), name))
	require.NoError(t, err)
	return k
}

// TestSecretsSealedInBolt: the raw bbolt file holds no secret — not raw,
// base64 or hex, nor a plain digest of a secret input.
func TestSecretsSealedInBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	defer st.Close()
	sealRun(t, st, keyFile(t, "kek"))
	sealRefusals(t, st, keyFile(t, "other.kek"))
	require.NoError(t, st.Close())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	requireNoSecret(t, "the bbolt file", raw)
	require.True(t, bytes.Contains(raw, []byte("mason/graph/secrets/nr/tok@n1")), "the scan reads the journal")
	backup, err := os.ReadFile(bolt.BackupPath(path))
	require.NoError(t, err)
	requireNoSecret(t, "the bbolt file's backup", backup)
	t.Logf("no secret in the %d bytes of the bbolt file nor in the %d of its backup", len(raw), len(backup))
}

// TestSecretsSealedInEtcd: neither etcd's keys and values, read raw with
// etcd's own client, nor its data directory (write-ahead log, snapshot
// and database) hold a secret.
func TestSecretsSealedInEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "sealed/"})
	require.NoError(t, err)
	defer st.Close()
	sealRun(t, st, keyFile(t, "kek"))
	sealRefusals(t, st, keyFile(t, "other.kek"))

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix())
	require.NoError(t, err)
	var all []byte
	for _, kv := range resp.Kvs {
		all = append(append(append(all, kv.Key...), 0), kv.Value...)
	}
	require.True(t, bytes.Contains(all, []byte("sealed/mason/graph/secrets/nr/tok@n1")), "the scan reads the journal")
	requireNoSecret(t, "etcd's keys and values", all)

	require.NoError(t, cli.Close())
	require.NoError(t, st.Close())
	m := c.Members[0]
	require.NoError(t, m.Stop())
	files := 0
	require.NoError(t, filepath.WalkDir(m.DataDir, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if len(b) > 0 {
			requireNoSecret(t, "etcd data file "+path, b)
		}
		return nil
	}))
	require.Greater(t, files, 1)
	t.Logf("no secret in %d keys of etcd nor in the %d files of its data directory", len(resp.Kvs), files)
}

// TestSecretsNeedAKey: a deployment whose roles output or take secrets is
// refused a plan without a key, naming the deployment and the secrets;
// one without secrets needs no key.
func TestSecretsNeedAKey(t *testing.T) {
	st := memStore(t)
	_, err := graph.NewPlan(context.Background(), newSealRoles().deployment("nokey", nil), st)
	require.ErrorIs(t, err, seal.ErrNoKey)
	require.EqualError(t, err, "graph: deployment nokey has no key-encryption key, but its journal would keep secrets (input Mgr of role join, input PIN of role join, input Password of role join, output Token of role tok): give it the application's key with Deployment.UseKEK (package seal loads one from a 0600 file or an environment variable); nothing was run or written")
	ents, _, err := st.List(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, ents)

	d := graph.NewDeployment("plain")
	d.Bind(d.Pool("p", nodes("n1")...), role.Of(role.Func(role.Meta{Name: "a"}, func(context.Context, *role.Context, struct{}) (struct{ A string }, error) {
		return struct{ A string }{"plain"}, nil
	})))
	_, res, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 1, res.Count(graph.StateSucceeded))
}

// An output that holds a secret only in an interface value is sealed too,
// and refused without a key when it does.
type AnyOut struct{ V any }

func TestSecretInAnInterfaceOutput(t *testing.T) {
	gob.Register(attr.Secret[string]{})
	mk := func(k *seal.KEK, v any) *graph.Deployment {
		d := graph.NewDeployment("iface")
		d.Bind(d.Pool("p", nodes("n1")...), role.Of(role.Func(role.Meta{Name: "a"}, func(context.Context, *role.Context, struct{}) (AnyOut, error) {
			return AnyOut{V: v}, nil
		})))
		if k != nil {
			d.UseKEK(k)
		}
		return d
	}
	// Plain values need no key.
	_, _, err := planApply(t, mk(nil, "plain"), memStore(t), graph.Options{})
	require.NoError(t, err)

	st := memStore(t)
	_, _, err = planApply(t, mk(nil, attr.Conceal(sealToken)), st, graph.Options{})
	require.ErrorContains(t, err, "the output of a@n1 holds a secret (attr.Secret), and deployment iface has no key-encryption key")
	ents, _, lerr := st.List(context.Background(), "")
	require.NoError(t, lerr)
	for _, e := range ents {
		require.NotContains(t, string(e.Value), sealToken)
	}

	st = memStore(t)
	k := testKEK(t)
	_, res, err := planApply(t, mk(k, attr.Conceal(sealToken)), st, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 1, res.Count(graph.StateSucceeded))
	es, err := graph.ReadJournal(context.Background(), st, "iface")
	require.NoError(t, err)
	require.True(t, es[0].SealedOutput)
}

// TestOldJournalIsResealed: a journal written by a mason from before
// sealing (record version 1: the token in plain gob, plain digests of the
// password and the PIN; testdata/journal-v1.db, made by this file's
// deployment with that version) is refused without a key, saying what to
// do; with one it is read as converged — nothing re-runs — and the next
// Apply rewrites every record sealed and keyed, as version 2.
func TestOldJournalIsResealed(t *testing.T) {
	ctx := context.Background()
	old, err := os.ReadFile("testdata/journal-v1.db")
	require.NoError(t, err)
	require.True(t, bytes.Contains(old, []byte(sealToken)), "the old journal holds the token in plain text")
	path := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(path, old, 0o600))
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	defer st.Close()
	versions := func() map[string]byte {
		ents, _, err := st.List(ctx, "mason/graph/secrets/nr/")
		require.NoError(t, err)
		out := map[string]byte{}
		for _, e := range ents {
			out[strings.TrimPrefix(e.Key, "mason/graph/secrets/nr/")] = e.Value[0]
		}
		return out
	}
	require.Equal(t, map[string]byte{"tok@n1": 1, "join@n1": 1, "join@n2": 1}, versions())

	s := newSealRoles()
	_, err = graph.NewPlan(ctx, s.deployment("secrets", nil), st)
	require.ErrorIs(t, err, seal.ErrNoKey)
	require.ErrorContains(t, err, "Deployment.UseKEK")

	k := testKEK(t)
	p, err := graph.NewPlan(ctx, s.deployment("secrets", k), st)
	require.NoError(t, err)
	require.Equal(t, 3, p.Count(graph.ActionSkip), "digests of the old journal still match: %s", p)
	res, err := graph.Apply(ctx, p, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 3, res.Count(graph.StateSkipped))
	require.Zero(t, s.runs["tok"]+s.runs["join"])
	require.Equal(t, map[string]byte{"tok@n1": 2, "join@n1": 2, "join@n2": 2}, versions())

	ents, _, err := st.List(ctx, "")
	require.NoError(t, err)
	var all []byte
	for _, e := range ents {
		all = append(append(append(all, e.Key...), 0), e.Value...)
	}
	requireNoSecret(t, "the state's keys and values after the rewrite", all)
	es, err := graph.ReadJournal(ctx, st, "secrets")
	require.NoError(t, err)
	for _, e := range es {
		require.Equal(t, e.ID == "tok@n1", e.SealedOutput, e.ID)
		if strings.HasPrefix(e.ID, "join@") {
			require.True(t, strings.HasPrefix(e.Digest, "hmac-sha256:"), e.Digest)
		}
	}

	// Pages bbolt freed by the rewrite keep their old bytes until reused:
	// say so, for the docs' advice to compact an old state.
	require.NoError(t, st.Close())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	t.Logf("after the rewrite, the old plain token is still in the file's free pages: %v", bytes.Contains(raw, []byte(sealToken)))
	st, err = bolt.Open(path, nil)
	require.NoError(t, err)
	defer st.Close()

	// The token sealed from the old journal still reaches its consumers.
	_, res, err = planApply(t, s.deployment("secrets", k), st, graph.Options{}, graph.Force("join"))
	require.NoError(t, err)
	require.Equal(t, 2, res.Count(graph.StateSucceeded))
	want := [3]string{sealToken, sealPassword, sealPIN}
	require.Equal(t, map[string][3]string{"n1": want, "n2": want}, s.got)
	require.Zero(t, s.runs["tok"])
}
