package role_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

type PeerURLOut struct {
	Name string
	URL  string
}

type CertOut struct{ PEM string }

type member struct{}

type memberIn struct {
	Cert    role.Same[CertOut]
	Peers   role.All[PeerURLOut]
	Token   string              `attr:"etcd.cluster_token" default:"mason"`
	Port    int                 `attr:"etcd.client_port"`
	Timeout time.Duration       `attr:"etcd.timeout" default:"5s"`
	Secret  attr.Secret[string] `attr:"etcd.shared_secret,optional"`
}

type memberOut struct {
	ClientURL string `attr:"etcd.client_url"`
	Cluster   string
}

func (member) Meta() role.Meta { return role.Meta{Name: "etcd-member", Version: "3.4"} }
func (member) Run(_ context.Context, rc *role.Context, in memberIn) (memberOut, error) {
	return memberOut{
		ClientURL: fmt.Sprintf("https://%s:%d", rc.Node().InterfaceAddr, in.Port),
		Cluster:   fmt.Sprint(in.Peers.Nodes()),
	}, nil
}

func envFor(node string, port int) role.Env {
	vs := attr.NewValues()
	if port != 0 {
		_ = vs.SetAny("etcd.client_port", port, attr.FromSpec(attr.LayerDeployment, "deploy.hcl", 7))
	}
	return role.Env{
		Node:  node,
		Attrs: vs,
		Outputs: []role.Output{
			{Role: "etcd-peer-url", Node: "n3", Value: PeerURLOut{"n3", "https://10.0.0.3:2380"}},
			{Role: "etcd-peer-url", Node: "n1", Value: PeerURLOut{"n1", "https://10.0.0.1:2380"}},
			{Role: "etcd-peer-url", Node: "n2", Value: PeerURLOut{"n2", "https://10.0.0.2:2380"}},
			{Role: "member-cert", Node: "n1", Value: CertOut{"cert-n1"}},
			{Role: "member-cert", Node: "n2", Value: CertOut{"cert-n2"}},
		},
	}
}

func TestBindAllSameAttrAndDefaults(t *testing.T) {
	d := role.Of(member{})
	require.NoError(t, d.Err())
	in, bindings, err := d.Bind(envFor("n2", 2379))
	require.NoError(t, err)
	mi := in.(memberIn)

	// The aggregate receives every peer's output, in node order.
	require.Equal(t, []string{"n1", "n2", "n3"}, mi.Peers.Nodes())
	require.Equal(t, "https://10.0.0.3:2380", mi.Peers[2].Value.URL)
	// Same takes this node's output only.
	require.Equal(t, "cert-n2", mi.Cert.Value.PEM)
	require.Equal(t, "member-cert", mi.Cert.Role)
	require.Equal(t, "mason", mi.Token)
	require.Equal(t, 2379, mi.Port)
	require.Equal(t, 5*time.Second, mi.Timeout)

	var lines []string
	for _, b := range bindings {
		lines = append(lines, b.String())
	}
	require.Equal(t, []string{
		"Cert <- output of member-cert on n2",
		"Peers <- output of etcd-peer-url on n1, output of etcd-peer-url on n2, output of etcd-peer-url on n3",
		"Token <- default (default tag of etcd-member.Token)",
		"Port <- deployment (deploy.hcl:7)",
		"Timeout <- default (default tag of etcd-member.Timeout)",
		"Secret <- zero value (optional)",
	}, lines)
}

func TestBindMissingInputsNameRoleAndField(t *testing.T) {
	d := role.Of(member{})
	env := envFor("n9", 0) // no cert on n9, no port anywhere
	_, _, err := d.Bind(env)
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, `role "etcd-member" on n9: input Cert (role.Same[role_test.CertOut]): no role produced it; looked at: outputs of type role_test.CertOut on node n9`)
	require.Contains(t, msg, `role "etcd-member" on n9: input Port (int, attr "etcd.client_port"): attribute "etcd.client_port" has no value; looked at: override, role outputs, node n9, deployment, key default, `+"`default` tag")

	var be *role.BindError
	require.True(t, errors.As(err, &be))
	require.Equal(t, "etcd-member", be.Role)
}

func TestBindTypeMismatchAndSecrets(t *testing.T) {
	d := role.Of(member{})
	env := envFor("n1", 0)
	require.NoError(t, env.Attrs.SetAny("etcd.client_port", "2379", attr.FromSpec(attr.LayerNode, "deploy.hcl", 19)))
	_, _, err := d.Bind(env)
	require.ErrorContains(t, err, `input Port (int, attr "etcd.client_port"): attr "etcd.client_port": value from node (deploy.hcl:19) has type string, want int`)

	env = envFor("n1", 2379)
	require.NoError(t, env.Attrs.SetAny("etcd.shared_secret", "hunter2", attr.FromSpec(attr.LayerDeployment, "deploy.hcl", 3)))
	in, _, err := d.Bind(env)
	require.NoError(t, err)
	mi := in.(memberIn)
	require.Equal(t, "hunter2", mi.Secret.Reveal(), "a plain value is delivered into a Secret field")
	require.NotContains(t, fmt.Sprintf("%+v", mi), "hunter2")
}

func TestAmbiguousAndRoleTag(t *testing.T) {
	type in struct {
		Cert role.Same[CertOut]
	}
	type tagged struct {
		Cert role.Same[CertOut] `role:"member-cert"`
	}
	env := envFor("n1", 0)
	env.Outputs = append(env.Outputs, role.Output{Role: "other-cert", Node: "n1", Value: CertOut{"x"}})

	amb := role.Of(role.Func(role.Meta{Name: "amb"}, func(context.Context, *role.Context, in) (struct{}, error) { return struct{}{}, nil }))
	_, _, err := amb.Bind(env)
	require.ErrorContains(t, err, "ambiguous: produced by member-cert@n1, other-cert@n1")

	ok := role.Of(role.Func(role.Meta{Name: "ok"}, func(context.Context, *role.Context, tagged) (struct{}, error) { return struct{}{}, nil }))
	v, _, err := ok.Bind(env)
	require.NoError(t, err)
	require.Equal(t, "cert-n1", v.(tagged).Cert.Value.PEM)
}

type badNoTag struct{}

func (badNoTag) Meta() role.Meta { return role.Meta{Name: "bad"} }
func (badNoTag) Run(context.Context, *role.Context, struct{ Port int }) (struct{}, error) {
	return struct{}{}, nil
}

type badCheck struct{}

func (badCheck) Meta() role.Meta { return role.Meta{Name: "badcheck"} }
func (badCheck) Run(context.Context, *role.Context, struct{}) (memberOut, error) {
	return memberOut{}, nil
}
func (badCheck) Check(context.Context, *role.Context, struct{}) (string, error) { return "", nil }

type intRole struct{}

func (intRole) Meta() role.Meta { return role.Meta{Name: "int"} }
func (intRole) Run(context.Context, *role.Context, int) (struct{}, error) {
	return struct{}{}, nil
}

// What the compiler cannot check, Of does, and keeps in the Def: the
// graph and the spec registry report it. (A value that is not a role at
// all does not compile: see TestNonRoleDoesNotCompile.)
func TestOfRejectsMalformedRoles(t *testing.T) {
	tests := []struct {
		def  *role.Def
		want string
	}{
		{role.Of(badNoTag{}), `role "bad": input field Port (int) says nowhere where it comes from`},
		{role.Of(badCheck{}), `role "badcheck": Check has signature func(context.Context, *role.Context, struct {}) (string, error); want func(context.Context, *role.Context, struct {}, role_test.memberOut) (string, error)`},
		{role.Of(intRole{}), `role "int": input type int is not a struct`},
		{role.Of(role.Func(role.Meta{Name: "d"}, func(context.Context, *role.Context, struct {
			N int `attr:"x.n" default:"many"`
		}) (struct{}, error) {
			return struct{}{}, nil
		})), `role "d": input field N: default "many"`},
		{role.Of(role.Func(role.Meta{}, func(context.Context, *role.Context, struct{}) (struct{}, error) { return struct{}{}, nil })), "Meta().Name is empty"},
		{role.Of[struct{}, struct{}](nil), "role: Of(nil)"},
		{&role.Def{}, "a Def not made by role.Of"},
		{nil, "nil Def"},
	}
	for _, tc := range tests {
		require.ErrorContains(t, tc.def.Err(), tc.want)
		if tc.def != nil {
			_, _, err := tc.def.Bind(role.Env{})
			require.ErrorContains(t, err, tc.want, "a malformed role cannot be bound")
			_, err = tc.def.Run(context.Background(), role.NewContext(role.ContextOptions{}), struct{}{})
			require.Error(t, err, "nor run")
		}
	}
}

type checked struct{}

func (checked) Meta() role.Meta { return role.Meta{Name: "checked"} }
func (checked) Run(context.Context, *role.Context, struct{}) (memberOut, error) {
	return memberOut{ClientURL: "https://x"}, nil
}
func (checked) Check(_ context.Context, _ *role.Context, _ struct{}, last memberOut) (string, error) {
	if last.ClientURL == "" {
		return "client URL lost", nil
	}
	return "", nil
}

func TestRunCheckPublishDigest(t *testing.T) {
	d := role.Of(checked{})
	require.True(t, d.HasCheck())
	rc := role.NewContext(role.ContextOptions{Role: "checked"})
	out, err := d.Run(context.Background(), rc, struct{}{})
	require.NoError(t, err)
	drift, err := d.Check(context.Background(), rc, struct{}{}, out)
	require.NoError(t, err)
	require.Empty(t, drift)
	drift, err = d.Check(context.Background(), rc, struct{}{}, memberOut{})
	require.NoError(t, err)
	require.Equal(t, "client URL lost", drift)
	_, err = d.Run(context.Background(), rc, 42)
	require.ErrorContains(t, err, "input has type int, want struct {}")

	vs := attr.NewValues()
	require.NoError(t, d.Publish(vs, "n1", out))
	v, ok := vs.Lookup("etcd.client_url")
	require.True(t, ok)
	require.Equal(t, "etcd.client_url = https://x (from output of checked on n1)", v.String())

	m := role.Of(member{})
	in1, _, err := m.Bind(envFor("n1", 2379))
	require.NoError(t, err)
	total1, fields1, err := m.DigestInputs(in1)
	require.NoError(t, err)
	env := envFor("n1", 2379)
	env.Outputs = append(env.Outputs, role.Output{Role: "etcd-peer-url", Node: "n4", Value: PeerURLOut{"n4", "https://10.0.0.4:2380"}})
	in2, _, err := m.Bind(env)
	require.NoError(t, err)
	total2, fields2, err := m.DigestInputs(in2)
	require.NoError(t, err)
	require.NotEqual(t, total1, total2, "a new peer changes the input digest")
	require.NotEqual(t, fields1["Peers"], fields2["Peers"])
	require.Equal(t, fields1["Cert"], fields2["Cert"], "and only the Peers field")
}

type dnsService interface{ Upsert(name, ip string) error }

type fakeDNS struct{ records map[string]string }

func (f *fakeDNS) Upsert(name, ip string) error { f.records[name] = ip; return nil }

func TestServicesAndTransport(t *testing.T) {
	svcs := role.NewServices()
	_, err := role.Lookup[dnsService](svcs)
	require.ErrorContains(t, err, "no service of type role_test.dnsService is registered")

	dns := &fakeDNS{records: map[string]string{}}
	role.Provide[dnsService](svcs, dns)
	got, err := role.Lookup[dnsService](svcs)
	require.NoError(t, err)
	require.NoError(t, got.Upsert("n1.lab", "10.0.0.1"))
	require.Equal(t, "10.0.0.1", dns.records["n1.lab"])

	rc := role.NewContext(role.ContextOptions{Role: "register", Services: svcs})
	_, err = rc.Exec(context.Background(), "true")
	require.ErrorContains(t, err, "no node")
	rc = role.NewContext(role.ContextOptions{Role: "r", Node: &provider.Node{Name: "n1"}})
	_, err = rc.Exec(context.Background(), "true")
	require.ErrorContains(t, err, "node n1 has no transport")
}
