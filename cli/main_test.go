package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/internal/memprovider"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// Roles of a small etcd-like application: they compute outputs from their
// inputs and touch nothing; member fails on the nodes listed in
// app.fail_on, to show failures and what they block.

type PeerURLOut struct{ URL string }

type MemberIn struct {
	Peers  role.All[PeerURLOut]
	Token  string   `attr:"app.token" default:"mason"`
	FailOn []string `attr:"app.fail_on,optional"`
}

type MemberOut struct{ InitialCluster string }

type VerifyIn struct{ Members role.All[MemberOut] }

type VerifyOut struct{ Members int }

// AnnounceIn reads an attribute that no Go tag publishes: a spec reference
// wires peer-url's URL field into it.
type AnnounceIn struct {
	Self string `attr:"app.self_url"`
}

type AnnounceOut struct{ Said string }

// ProbeIn reads the same output type twice: its own node's (Same) and
// every node's (All).
type ProbeIn struct {
	Self role.Same[PeerURLOut]
	All  role.All[PeerURLOut]
}

type ProbeOut struct{ Seen int }

func registry(drv provider.Driver) *spec.Registry {
	reg := spec.NewRegistry()
	err := reg.Roles(
		role.Of(role.Func(role.Meta{Name: "peer-url", Version: "1"},
			func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURLOut, error) {
				return PeerURLOut{URL: "https://" + rc.Node().InterfaceAddr.String() + ":2380"}, nil
			})),
		role.Of(role.Func(role.Meta{Name: "member", Version: "3.5"},
			func(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
				if slices.Contains(in.FailOn, rc.Node().Name) {
					return MemberOut{}, fmt.Errorf("member on %s: disk full", rc.Node().Name)
				}
				var parts []string
				for _, p := range in.Peers {
					parts = append(parts, p.Node+"="+p.Value.URL)
				}
				return MemberOut{InitialCluster: strings.Join(parts, ",")}, nil
			})),
		role.Of(role.Func(role.Meta{Name: "announce", Version: "1"},
			func(ctx context.Context, rc *role.Context, in AnnounceIn) (AnnounceOut, error) {
				return AnnounceOut{Said: rc.Node().Name + " is " + in.Self}, nil
			})),
		role.Of(role.Func(role.Meta{Name: "probe", Version: "1"},
			func(ctx context.Context, rc *role.Context, in ProbeIn) (ProbeOut, error) {
				return ProbeOut{Seen: len(in.All)}, nil
			})),
		role.Of(role.Func(role.Meta{Name: "verify", Version: "1", Scope: role.ScopeService},
			func(ctx context.Context, rc *role.Context, in VerifyIn) (VerifyOut, error) {
				return VerifyOut{Members: len(in.Members)}, nil
			})),
	)
	if err != nil {
		panic(err)
	}
	reg.Provider("mem", func(ctx context.Context, s spec.Settings) (*provider.Provider, error) {
		return provider.New(drv), nil
	})
	return reg
}

const appSpec = `deployment = "front"

variable "token" {
  type    = string
  default = "t1"
}

variable "fail_on" {
  type    = list(string)
  default = []
}

provider "mem" {}

pool "members" {
  nodes = ["n1", "n2", "n3"]
}

role "peer-url" {
  on = [pool.members]
}

role "member" {
  on = [pool.members]
  attrs = {
    "app.token"   = var.token
    "app.fail_on" = var.fail_on
  }
  inputs = {
    Peers = role.peer-url.outputs
  }
}

role "verify" {
  inputs = {
    Members = role.member.outputs
  }
}
`

// frontEnd runs the front end against one spec file and one bbolt state file.
type frontEnd struct {
	t     *testing.T
	drv   *memprovider.Driver
	reg   *spec.Registry
	spec  string
	state string
}

func newFrontEnd(t *testing.T, src string) *frontEnd {
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.hcl")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	drv := memprovider.New(1000)
	return &frontEnd{t: t, drv: drv, reg: registry(drv), spec: path, state: filepath.Join(dir, "mason.state")}
}

func (c *frontEnd) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	args = append([]string{args[0], "-spec", c.spec, "-state", c.state}, args[1:]...)
	code := cli.Run(context.Background(), cli.App{Name: "prov", Registry: c.reg, Stdout: &out, Stderr: &errb}, args, nil)
	return code, out.String(), errb.String()
}

func TestApplyThenPlanSaysNoChanges(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, out, errs := c.run("plan")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "create node n1 (provider mem")
	require.Contains(t, out, "plan for front: 7 to run")
	require.Contains(t, out, "member@n2: new")

	code, out, errs = c.run("apply", "-parallelism", "2")
	require.Equal(t, cli.ExitOK, code, errs+out)
	require.Equal(t, 3, c.drv.Count())
	require.Contains(t, out, "created node n1")
	require.Contains(t, out, "7 of 7 done (7 succeeded)")
	require.NotContains(t, out, "pending")
	require.Contains(t, out, "apply front: 7 succeeded, 0 failed, 0 blocked")

	code, out, errs = c.run("plan")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Equal(t, "no changes: front is converged (7 node-roles)\n", out)

	code, out, _ = c.run("apply")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "no changes")

	code, out, _ = c.run("plan", "-var", "token=t2")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "member@n1: input Token changed")
	require.Contains(t, out, "verify: inputs known after run (waits for member@n1, member@n2, member@n3)")
}

func TestWhyShowsReasonAndProvenance(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)

	code, out, errs := c.run("why", "member@n2", "-var", "token=t2")
	require.Equal(t, cli.ExitOK, code, errs)
	for _, want := range []string{
		"member@n2: run — input Token changed",
		"bound at " + c.spec + ":23 to pool members",
		"last: succeeded (attempt 1)",
		"waits for:\n    peer-url@n1: skip — converged",
		`Peers (role.All[cli_test.PeerURLOut]) <- output of peer-url@n1, peer-url@n2, peer-url@n3 (spec reference at ` + c.spec + ":30:13)",
		`Token (string, attr "app.token") = "t2" <- role block member (` + c.spec + ":26)",
		`FailOn ([]string, attr "app.fail_on") = [] <- role block member (` + c.spec + ":27)",
	} {
		require.Contains(t, out, want)
	}

	code, out, _ = c.run("why", "verify")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "verify: skip — converged")
	require.Contains(t, out, "Members (role.All[cli_test.MemberOut]) <- output of member@n1, member@n2, member@n3")

	code, _, errs = c.run("why", "member@n9")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errs, `front has no node-role "member@n9"`)
}

// A spec reference that renames an output field: why names the one
// producer on the consumer's own node, not every node-role of that role.
func TestWhyNamesProducerOfRenamedReference(t *testing.T) {
	c := newFrontEnd(t, appSpec+`
role "announce" {
  on = [pool.members]
  attrs = {
    "app.self_url" = role.peer-url.output.URL
  }
}
`)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)
	code, out, errs := c.run("why", "announce@n2")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "announce@n2: skip — converged")
	require.Contains(t, out, `Self (string, attr "app.self_url") <- output of peer-url@n2, published as attribute "app.self_url" (spec reference at `+c.spec+":43:22)")
	require.NotContains(t, out, "peer-url@n1")
	require.NotContains(t, out, "peer-url@n3")
}

func TestFailureStatusAndBlocked(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, out, errs := c.run("apply", "-var", `fail_on=["n2"]`)
	require.Equal(t, cli.ExitFailure, code, errs)
	require.Regexp(t, `FAILED  member@n2 after 1 attempt in \d+\.\ds: member on n2: disk full`, out)
	require.Contains(t, out, "blocked verify: blocked by member@n2")
	require.Contains(t, errs, "disk full")

	code, out, errs = c.run("status")
	require.Equal(t, cli.ExitFailure, code, "status exits 1 when something failed or is blocked: %s", errs)
	require.Regexp(t, `member@n2\s+failed\s+1\s+\S+\s+error: member on n2: disk full`, out)
	require.Regexp(t, `verify\s+blocked\s+.*blocked by member@n2`, out)
	require.Contains(t, out, "front: 5 succeeded, 1 failed, 1 blocked")

	code, out, _ = c.run("why", "verify")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "blocked by member@n2")

	// Fixing the variable runs the failed member and what it blocked.
	code, out, _ = c.run("plan")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "member@n2: last run failed: member on n2: disk full")
	code, _, errs = c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)
	code, out, errs = c.run("status")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "front: 4 succeeded, 3 skipped")
}

// A role that fails the same way on every node is one problem in the
// front end's error, naming the nodes; the progress display keeps one
// line per failure.
func TestSameFailureOnManyNodesIsOneProblem(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, out, errs := c.run("apply", "-var", `fail_on=["n1","n2","n3"]`)
	require.Equal(t, cli.ExitFailure, code)
	require.Equal(t, "prov apply: member@<node> failed after 1 attempt(s): member on <node>: disk full — on n1, n2, n3\n", errs)
	for _, n := range []string{"n1", "n2", "n3"} {
		require.Contains(t, out, "FAILED  member@"+n)
	}
}

// why on a Same input names only the producer on the consumer's node,
// although the same role's outputs on every node feed its All input.
func TestWhySameNamesOnlyItsNode(t *testing.T) {
	c := newFrontEnd(t, appSpec+`
role "probe" {
  on = [pool.members]
}
`)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)
	code, out, errs := c.run("why", "probe@n2")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "    Self (role.Same[cli_test.PeerURLOut]) <- output of peer-url@n2\n")
	require.Contains(t, out, "    All (role.All[cli_test.PeerURLOut]) <- output of peer-url@n1, peer-url@n2, peer-url@n3\n")
}

// A missing attribute on 100 nodes is one diagnostic at the role block,
// naming the nodes, not 100 copies.
func TestMissingAttributeOn100NodesIsOneDiagnostic(t *testing.T) {
	src := strings.Replace(appSpec, `nodes = ["n1", "n2", "n3"]`, `count = 100`, 1) + `
role "announce" {
  on = [pool.members]
}
`
	c := newFrontEnd(t, src)
	code, out, errs := c.run("plan")
	require.Equal(t, cli.ExitUsage, code)
	require.Empty(t, out)
	require.Equal(t, 1, strings.Count(errs, "error: "), errs)
	require.Contains(t, errs, c.spec+`:40:1: error: Input cannot be wired: role "announce" on members-1 … members-100 (100 nodes): input Self (string, attr "app.self_url"): attribute "app.self_url" has no value; looked at: override, role outputs, node, deployment, key default, `+"`default`"+` tag.`)
	require.Contains(t, errs, "1 error(s) in the spec; nothing was changed")
	require.Equal(t, 0, c.drv.Count(), "nothing was created")
}

// help works both ways round, for every command, and prints that
// command's flags.
func TestHelpBothWays(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), cli.App{Name: "prov", Registry: c.reg, Stdout: &out, Stderr: &errb}, args, nil)
		return code, out.String(), errb.String()
	}
	code, general, _ := run("help")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, general, "usage: prov COMMAND [flags] [args]")
	require.Contains(t, general, "prov help COMMAND (or prov COMMAND -h) prints a command's flags.")
	for _, cmd := range []string{"plan", "apply", "graph", "status", "why", "destroy"} {
		require.Contains(t, general, "  "+cmd+" ")
		var want string
		for i, args := range [][]string{{"help", cmd}, {cmd, "help"}, {cmd, "-h"}, {cmd, "--help"}, {cmd, "-spec", "x.hcl", "help"}} {
			code, out, errs := run(args...)
			require.Equal(t, cli.ExitOK, code, "%v: %s", args, errs)
			require.Empty(t, errs)
			require.True(t, strings.HasPrefix(out, "usage: prov "+cmd+" [flags]"), "%v: %s", args, out)
			require.Contains(t, out, "-state")
			if i == 0 {
				want = out
			}
			require.Equal(t, want, out, "%v prints the same help", args)
		}
	}
	_, out, _ := run("help", "apply")
	require.Contains(t, out, "-parallelism n")
	require.Contains(t, out, "-json")
	_, out, _ = run("help", "destroy")
	require.Contains(t, out, "-yes")
	require.NotContains(t, out, "-parallelism")

	code, _, errs := run("help", "nope")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errs, `unknown command "nope"`)
	code, _, errs = run()
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errs, "usage: prov COMMAND")
}

func TestJSONLines(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, out, errs := c.run("apply", "-json")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, errs, "apply front: 7 succeeded")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	succeeded := 0
	for _, l := range lines {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &e), l)
		require.Equal(t, "front", e["deployment"])
		if e["state"] == "succeeded" {
			succeeded++
		}
	}
	require.Equal(t, 7, succeeded)
}

func TestGraph(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, out, errs := c.run("graph")
	require.Equal(t, cli.ExitOK, code, errs)
	require.True(t, strings.HasPrefix(out, `digraph "front" {`))
	require.Contains(t, out, `"peer-url@n3" -> "member@n1";`)
	require.Contains(t, out, `"member@n2" -> "verify";`)

	code, out, errs = c.run("graph", "-format", "svg")
	if _, err := exec.LookPath("dot"); err != nil {
		// Without Graphviz the command says what to install.
		require.Equal(t, cli.ExitFailure, code)
		require.Contains(t, errs, "needs Graphviz's dot")
		if os.Getenv("CI") != "" {
			t.Fatal("Graphviz's dot is missing in CI; .ci/debian-packages lists graphviz")
		}
		t.Skip("Graphviz's dot is not installed (apt-get install graphviz): SVG rendering not tested")
	}
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "<svg")
	require.Contains(t, out, "member@n1")
}

func TestDestroy(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)

	code, _, errs = c.run("destroy")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errs, "destroy would delete 3 node(s) of provider mem: n1, n2, n3")
	require.Equal(t, 3, c.drv.Count())

	code, out, errs := c.run("destroy", "-yes")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "deleted 3 node(s)")
	require.Equal(t, 0, c.drv.Count())

	code, out, _ = c.run("status")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "front: 7 never run")
	code, out, _ = c.run("plan")
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "plan for front: 7 to run")
}

func TestUsageAndSpecErrors(t *testing.T) {
	bad := strings.Replace(appSpec, `role "verify" {`, `role "verifier" {`, 1)
	bad = strings.Replace(bad, `"app.token"   = var.token`, `"app.token"   = 42`, 1)
	c := newFrontEnd(t, bad)
	code, out, errs := c.run("plan")
	require.Equal(t, cli.ExitUsage, code)
	require.Empty(t, out)
	require.Contains(t, errs, c.spec+`:26:21: error: Type mismatch: Attribute "app.token" is a Go string: the field wants a string, but the value is a number.`)
	require.Contains(t, errs, "    26 |     \"app.token\"   = 42\n       |                     ^^\n")
	require.Contains(t, errs, c.spec+`:34:6: error: Unknown role: This program has no role "verifier". Did you mean "verify"?`)
	require.Contains(t, errs, "2 error(s) in the spec; nothing was changed")

	good := newFrontEnd(t, appSpec)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"frobnicate"}, cli.ExitUsage, `unknown command "frobnicate"`},
		{[]string{"why"}, cli.ExitUsage, "want one node-role"},
		{[]string{"plan", "extra"}, cli.ExitUsage, "unexpected arguments"},
		{[]string{"apply", "-parallelism", "-1"}, cli.ExitUsage, "-parallelism -1: want at least 1"},
		{[]string{"apply", "-parallelism", "0"}, cli.ExitUsage, "-parallelism 0: want at least 1"},
		{[]string{"plan", "-nope"}, cli.ExitUsage, "flag provided but not defined: -nope\n(prov help plan lists its flags)"},
		{[]string{"plan", "-var", "nope"}, cli.ExitUsage, "want NAME=VALUE"},
		{[]string{"plan", "-var", "tokn=x"}, cli.ExitUsage, `the spec declares no variable "tokn". Did you mean "token"?`},
		{[]string{"plan", "-state", "s3://bucket"}, cli.ExitFailure, "unknown scheme"},
		{[]string{"graph", "-format", "png"}, cli.ExitUsage, "want dot or svg"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errs := good.run(tc.args...)
			require.Equal(t, tc.code, code, errs)
			require.Contains(t, errs, tc.msg)
		})
	}
}

// TestStateInEtcd: the same front end keeps its state in a real etcd
// server (Debian's etcd-server), so a second controller sees it.
func TestStateInEtcd(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	c := newFrontEnd(t, appSpec)
	c.state = "etcd://" + strings.TrimPrefix(ec.Endpoints()[0], "http://") + "/mason-cli/"
	// A shared state has no key file beside it: every controller names
	// the same key.
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitFailure, code)
	require.Contains(t, errs, "deployment front needs a key-encryption key: set environment variable MASON_KEK")
	require.Equal(t, 0, c.drv.Count(), "nothing was created")
	keyFile := filepath.Join(t.TempDir(), "front.kek")
	code, _, errs = c.run("apply", "-key-file", keyFile)
	require.Equal(t, cli.ExitOK, code, errs)

	other := newFrontEnd(t, appSpec) // another controller: its own spec copy, same provider nodes and store
	other.drv, other.reg, other.state = c.drv, c.reg, c.state
	code, out, errs := other.run("plan", "-key-file", keyFile)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Equal(t, "no changes: front is converged (7 node-roles)\n", out)
	code, out, _ = other.run("status", "-key-file", keyFile)
	require.Equal(t, cli.ExitOK, code)
	require.Contains(t, out, "front: 7 succeeded")
}
