package attr_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
)

var (
	port  = attr.New[int]("etcd.client_port").WithDefault(2379).WithValidation(validPort)
	token = attr.New[string]("swarm.join_token").AsSecret()
)

func validPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d out of range 1-65535", p)
	}
	return nil
}

func TestProvenancePerLayer(t *testing.T) {
	vs := attr.NewValues()
	steps := []struct {
		set     func() error
		want    int
		wantSrc string
	}{
		{func() error { return nil }, 2379, "default"},
		{func() error { return attr.Set(vs, port, 3000, attr.FromSpec(attr.LayerDeployment, "deploy.hcl", 12)) }, 3000, "deployment (deploy.hcl:12)"},
		{func() error {
			return attr.Set(vs, port, 3001, attr.Source{Layer: attr.LayerNode, Node: "n2", File: "deploy.hcl", Line: 30})
		}, 3001, "node n2 (deploy.hcl:30)"},
		{func() error { return attr.Set(vs, port, 3002, attr.FromOutput("port-picker", "n2")) }, 3002, "output of port-picker on n2"},
		{func() error {
			return attr.Set(vs, port, 3003, attr.Source{Layer: attr.LayerOverride, Detail: "--set flag"})
		}, 3003, "override (--set flag)"},
	}
	for i, st := range steps {
		require.NoError(t, st.set(), "step %d", i)
		v, err := attr.GetValue(vs, port)
		require.NoError(t, err)
		require.Equal(t, st.want, v.Any(), "step %d", i)
		require.Equal(t, st.wantSrc, v.Source.String(), "step %d", i)
	}
	// Explain lists every layer, highest first, down to the default.
	var srcs []string
	for _, v := range vs.Explain(port.Name()) {
		srcs = append(srcs, v.Source.String())
	}
	require.Equal(t, []string{"override (--set flag)", "output of port-picker on n2", "node n2 (deploy.hcl:30)", "deployment (deploy.hcl:12)", "default"}, srcs)

	svc := attr.Source{Layer: attr.LayerOutput, Service: "ipam"}
	require.Equal(t, "service ipam", svc.String())
}

func TestValidationAndTypeErrors(t *testing.T) {
	vs := attr.NewValues()
	err := attr.Set(vs, port, 70000, attr.FromSpec(attr.LayerDeployment, "d.hcl", 3))
	require.ErrorContains(t, err, `attr "etcd.client_port": invalid value: port 70000 out of range 1-65535 (from deployment (d.hcl:3))`)

	// A value set by name with the wrong type is caught, never a panic.
	require.NoError(t, vs.SetAny("etcd.client_port", "2380", attr.FromSpec(attr.LayerDeployment, "d.hcl", 4)))
	_, err = attr.Get(vs, port)
	var te *attr.TypeError
	require.ErrorAs(t, err, &te)
	require.Equal(t, `attr "etcd.client_port": value from deployment (d.hcl:4) has type string, want int`, err.Error())

	// Once declared, SetAny checks the type up front.
	other := attr.NewValues()
	require.NoError(t, other.Declare(port))
	require.ErrorContains(t, other.SetAny("etcd.client_port", "x", attr.FromSpec(attr.LayerNode, "d.hcl", 9)), "has type string, want int")

	_, err = attr.Get(attr.NewValues(), attr.New[string]("dns.zone"))
	var me *attr.MissingError
	require.ErrorAs(t, err, &me)

	bad := attr.New[int]("NoDots")
	require.Error(t, bad.Err())
	require.ErrorContains(t, attr.Set(vs, bad, 1, attr.Source{Layer: attr.LayerDefault}), "invalid key name")

	require.Error(t, other.Declare(attr.New[string]("etcd.client_port")), "same name, different type")
}

func TestSecretsNeverPrint(t *testing.T) {
	const secret = "SWMTKN-1-supersecret"
	vs := attr.NewValues()
	require.NoError(t, attr.Set(vs, token, secret, attr.FromOutput("swarm-manager", "n1")))
	v, err := attr.GetValue(vs, token)
	require.NoError(t, err)

	wrapped := attr.Conceal(secret)
	type out struct {
		Token attr.Secret[string]
		Name  string
	}
	o := out{Token: wrapped, Name: "n1"}

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("value", "attr", v, "secret", wrapped, "out", o)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("value", "attr", v, "secret", wrapped)

	js1, err := json.Marshal(v)
	require.NoError(t, err)
	js2, err := json.Marshal(o)
	require.NoError(t, err)

	for _, s := range []string{
		v.String(), fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), fmt.Sprintf("%s", v), fmt.Sprintf("%q", v),
		wrapped.String(), fmt.Sprintf("%v", wrapped), fmt.Sprintf("%+v", wrapped), fmt.Sprintf("%#v", wrapped), fmt.Sprintf("%x", wrapped), fmt.Sprintf("%q", wrapped),
		fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o),
		string(js1), string(js2), logs.String(),
	} {
		require.NotContains(t, s, "supersecret", "leaked in %q", s)
		require.Contains(t, s, attr.Redacted)
	}
	// ...but the role that needs it gets it.
	got, err := attr.Get(vs, token)
	require.NoError(t, err)
	require.Equal(t, secret, got)
	require.Equal(t, secret, wrapped.Reveal())

	// A secret read from JSON (a variables file) keeps its value.
	var in out
	require.NoError(t, json.Unmarshal([]byte(`{"Token":"abc","Name":"x"}`), &in))
	require.Equal(t, "abc", in.Token.Reveal())
}

func TestDigest(t *testing.T) {
	type peer struct {
		Name string
		Addr netip.Addr
		At   time.Time
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := map[string]any{
		"peers": []peer{{"n1", netip.MustParseAddr("10.0.0.1"), at}},
		"token": attr.Conceal("t1"),
		"port":  2379,
		"tags":  map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"},
	}
	d0, err := attr.Digest(base)
	require.NoError(t, err)
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, d0)
	// Map iteration order is random: many digests of the same value agree.
	for i := 0; i < 50; i++ {
		d, err := attr.Digest(map[string]any{
			"tags":  map[string]string{"d": "4", "c": "3", "b": "2", "a": "1"},
			"port":  2379,
			"token": attr.Conceal("t1"),
			"peers": []peer{{"n1", netip.MustParseAddr("10.0.0.1"), at.In(time.UTC)}},
		})
		require.NoError(t, err)
		require.Equal(t, d0, d)
	}
	changes := map[string]any{
		"port":   2380,
		"port64": int64(2379),
		"str":    "2379",
		"token":  attr.Conceal("t2"),
		"addr":   []peer{{"n1", netip.MustParseAddr("10.0.0.2"), at}},
		"tags":   map[string]string{"a": "1", "b": "2", "c": "3", "d": "5"},
		"time":   []peer{{"n1", netip.MustParseAddr("10.0.0.1"), at.Add(time.Second)}},
	}
	seen := map[string]string{d0: "base"}
	for what, v := range changes {
		m := map[string]any{}
		for k, x := range base {
			m[k] = x
		}
		switch what {
		case "port", "port64", "str":
			m["port"] = v
		case "addr", "time":
			m["peers"] = v
		default:
			m[what] = v
		}
		d, err := attr.Digest(m)
		require.NoError(t, err)
		require.NotContains(t, seen, d, "changing %s must change the digest (collides with %s)", what, seen[d])
		seen[d] = what
	}
	_, err = attr.Digest(map[string]any{"f": func() {}})
	require.Error(t, err)

	vs := attr.NewValues()
	require.NoError(t, attr.Set(vs, port, 1, attr.FromSpec(attr.LayerDeployment, "a.hcl", 1)))
	other := attr.NewValues()
	require.NoError(t, attr.Set(other, port, 1, attr.Source{Layer: attr.LayerOverride}))
	da, _ := vs.Digest()
	db, _ := other.Digest()
	require.Equal(t, da, db, "where a value came from does not change its digest")
}

func TestMergeAndClone(t *testing.T) {
	dep := attr.NewValues()
	require.NoError(t, attr.Set(dep, port, 1000, attr.FromSpec(attr.LayerDeployment, "d.hcl", 1)))
	node := dep.Clone()
	require.NoError(t, attr.Set(node, port, 2000, attr.Source{Layer: attr.LayerNode, Node: "n1"}))
	got, err := attr.Get(dep, port)
	require.NoError(t, err)
	require.Equal(t, 1000, got, "clone is independent")
	got, err = attr.Get(node, port)
	require.NoError(t, err)
	require.Equal(t, 2000, got)
}
