package spec_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zclconf/go-cty/cty"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
)

const varSpec = `
deployment = "v"
variable "members" {
  type    = number
  default = 1
}
variable "zone" {
  type    = string
  default = "a"
}
variable "tags" {
  type    = list(string)
  default = []
}
pool "p" {
  count  = var.members
  labels = { zone = var.zone, tags = join(",", var.tags) }
}
role "peer-url" {
  on = [pool.p]
}
`

// TestVariableSources: default < environment < variable file < -var flag,
// each checked against the variable's type.
func TestVariableSources(t *testing.T) {
	file := spec.File{Name: "prod.vars", Src: []byte("members = 5\nzone = \"file\"\n")}
	for _, tc := range []struct {
		name    string
		opts    spec.Options
		members int64
		zone    string
		tags    string
		err     string
	}{
		{name: "defaults", members: 1, zone: "a"},
		{name: "env", opts: spec.Options{Env: []string{"MASON_VAR_members=3", "MASON_VAR_zone=env", "MASON_VAR_other=1", "HOME=/root"}}, members: 3, zone: "env"},
		{name: "file over env", opts: spec.Options{Env: []string{"MASON_VAR_zone=env"}, VarFiles: []spec.File{file}}, members: 5, zone: "file"},
		{name: "flag over file", opts: spec.Options{VarFiles: []spec.File{file}, Vars: map[string]string{"zone": "flag", "tags": `["x", "y"]`}}, members: 5, zone: "flag", tags: "x,y"},
		{name: "flag of wrong type", opts: spec.Options{Vars: map[string]string{"members": "three"}}, err: `<-var members>:1:1: error: Invalid value for variable: The value for variable "members" from -var flag does not fit its type number`},
		{name: "undeclared flag", opts: spec.Options{Vars: map[string]string{"zones": "b"}}, err: `Value for undeclared variable: -var zones=...: the spec declares no variable "zones". Did you mean "zone"?`},
		{name: "undeclared in file", opts: spec.Options{VarFiles: []spec.File{{Name: "x.vars", Src: []byte("\nmembrs = 3\n")}}}, err: `x.vars:2:1: error: Value for undeclared variable`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, diags := spec.Load(testRegistry(), []spec.File{{Name: "v.hcl", Src: []byte(varSpec)}}, tc.opts)
			if tc.err != "" {
				require.True(t, diags.HasErrors())
				require.Contains(t, spec.Format(diags), tc.err)
				return
			}
			require.False(t, diags.HasErrors(), spec.Format(diags))
			n, _ := s.Vars["members"].AsBigFloat().Int64()
			require.Equal(t, tc.members, n)
			require.Equal(t, cty.StringVal(tc.zone), s.Vars["zone"])
			require.Len(t, s.Pools[0].Nodes, int(tc.members))
			require.Equal(t, tc.zone, s.Pools[0].Labels["zone"])
			require.Equal(t, tc.tags, s.Pools[0].Labels["tags"])
			ns := s.NodeSpecs()
			require.Len(t, ns, int(tc.members))
			require.Equal(t, "p", ns[0].Labels[spec.PoolLabel])
			require.Equal(t, tc.zone, ns[0].Labels["zone"])
		})
	}
}

// TestPlanErrorsAsDiagnostics: mistakes only the graph can see (wiring
// decided by Go types, not by spec references) still come back as
// diagnostics at the role blocks concerned.
func TestPlanErrorsAsDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{name: "cycle through Go wiring", src: "deployment = \"c\"\nrole \"ping\" {}\nrole \"pong\" {}\n",
			want: `c.hcl:2:1: error: Dependency cycle: ping → pong → ping: ping waits for pong (its input X reads attribute "test.pong", which pong publishes), and pong waits for ping (its input X reads attribute "test.ping", which ping publishes). Roles on a cycle can never start; remove one of these references, or change one role so it does not need the other.` + "\n"},
		{name: "missing producer", src: "deployment = \"c\"\npool \"p\" {\n  count = 1\n}\n\nrole \"member\" {\n  on = [pool.p]\n}\n",
			want: "c.hcl:6:1: error: Input cannot be wired: role \"member\" on p-1: input Peers (role.All[spec_test.PeerURLOut]): no role produced it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, diags := spec.Load(testRegistry(), []spec.File{{Name: "c.hcl", Src: []byte(tc.src)}}, spec.Options{})
			require.False(t, diags.HasErrors(), spec.Format(diags))
			d, err := s.Deployment(nil)
			require.NoError(t, err)
			_, err = graph.NewPlan(context.Background(), d, mem.New())
			require.Error(t, err)
			got := spec.Format(s.Diagnostics(err))
			require.Contains(t, got, tc.want)
			require.Equal(t, 1, strings.Count(got, "\n"), "one diagnostic: %s", got)
			require.NotContains(t, got, "graph:", "the spec's words, not the graph's")
			require.NotContains(t, got, "Meta.Requires")
		})
	}
}

// TestSensitiveVariables: a value from a sensitive variable stays secret
// in the deployment's attributes (the role still receives it), and is
// refused for a plain attribute that would print it.
func TestSensitiveVariables(t *testing.T) {
	src := `
deployment = "s"
variable "token" {
  type      = string
  default   = "hunter2"
  sensitive = true
  validation {
    condition     = length(var.token) > 3
    error_message = "too short: ${var.token}"
  }
}
variable "port" {
  type      = number
  default   = 2379
  sensitive = true
}
pool "p" {
  count = 1
}
role "peer-url" {
  on = [pool.p]
}
role "member" {
  on = [pool.p]
  attrs = {
    "test.token"  = "tok-${var.token}"
    "test.ca_pem" = "none"
  }
}
`
	s, diags := spec.Load(testRegistry(), []spec.File{{Name: "s.hcl", Src: []byte(src)}}, spec.Options{})
	require.False(t, diags.HasErrors(), spec.Format(diags))
	d, err := s.Deployment(nil)
	require.NoError(t, err)
	v, ok := d.Attrs().Lookup("test.token")
	require.True(t, ok)
	require.NotContains(t, v.String(), "hunter2")
	require.NotContains(t, fmt.Sprint(v), "hunter2")
	ctx := context.Background()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	d.UseKEK(specKEK) // its token is a secret
	p, err := graph.NewPlan(ctx, d, st)
	require.NoError(t, err)
	_, err = graph.Apply(ctx, p, graph.Options{Parallelism: 1})
	require.NoError(t, err, "the role receives the plain value through the binder")

	_, diags = spec.Load(testRegistry(), []spec.File{{Name: "s.hcl", Src: []byte(src + `
attrs = {
  "test.port" = var.port
}
`)}}, spec.Options{Vars: map[string]string{"token": "abc"}})
	out := spec.Format(diags)
	require.Contains(t, out, "s.hcl:32:17: error: Sensitive value in a plain attribute")
	require.Contains(t, out, "The value is not valid (the message is not shown: it uses a sensitive value).")
	require.NotContains(t, out, "abc")
}
