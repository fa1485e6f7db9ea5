package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/internal/memprovider"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

// undoLog records the undos of the shrink test's member role; failing
// makes them fail.
type undoLog struct {
	mu      sync.Mutex
	lines   []string
	failing bool
}

func (l *undoLog) undo(node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, "undo member@"+node)
	if l.failing {
		return errors.New("member-remove: no reply from the cluster")
	}
	return nil
}

func shrinkRegistry(drv provider.Driver, l *undoLog) *spec.Registry {
	reg := spec.NewRegistry()
	err := reg.Roles(
		role.Of(role.Func(role.Meta{Name: "peer-url", Version: "1"},
			func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURLOut, error) {
				return PeerURLOut{URL: "https://" + rc.Node().Name + ":2380"}, nil
			})),
		role.Of(role.Func(role.Meta{Name: "member", Version: "1"},
			func(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
				return MemberOut{InitialCluster: fmt.Sprint(len(in.Peers))}, nil
			}).WithUndo(func(ctx context.Context, rc *role.Context, _ MemberOut) error { return l.undo(rc.Node().Name) })),
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

const shrinkSpec = `deployment = "shrink"
provider "mem" {}
pool "web" {
  nodes = ["web-1", "web-2", "web-3", "web-4"]
}
role "peer-url" {
  on = [pool.web]
}
role "member" {
  on = [pool.web]
}
role "verify" {}
`

// A deployment shrunk from 4 nodes to 3 through the front end: plan names
// the removal and why, apply undoes the node's member and deletes it,
// status no longer lists it; an undo that fails stops the removal and
// says how to force it.
func TestShrinkThroughTheFrontEnd(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(map[bool]string{false: "undo succeeds", true: "undo fails"}[failing], func(t *testing.T) {
			c := newFrontEnd(t, shrinkSpec)
			l := &undoLog{}
			c.drv = memprovider.New(10)
			c.reg = shrinkRegistry(c.drv, l)
			code, _, errs := c.run("apply")
			require.Equal(t, cli.ExitOK, code, errs)
			require.Equal(t, 4, c.drv.Count())

			require.NoError(t, os.WriteFile(c.spec, []byte(strings.Replace(shrinkSpec, `, "web-4"]`, `]`, 1)), 0o644))
			code, out, errs := c.run("plan")
			require.Equal(t, cli.ExitOK, code, errs)
			require.NotContains(t, out, "no changes")
			require.Contains(t, out, "plan for shrink: 4 to run, 0 to run if changed, 3 converged, 1 node to remove\n")
			for _, line := range []string{
				"  run            member@web-1: input Peers changed: -web-4\n",
				"  run            verify: input Members changed: -web-4\n",
				"  remove         node web-4: node web-4 left the deployment\n",
				"  undo           member@web-4: node web-4 left the deployment\n",
				"  forget         peer-url@web-4: the role has no Undo\n",
			} {
				require.Contains(t, out, line)
			}
			code, out, _ = c.run("why", "member@web-4")
			require.Equal(t, cli.ExitOK, code)
			require.Contains(t, out, "member@web-4: undo — node web-4 left the deployment\n")
			require.Contains(t, out, "    undo member@web-4 (last succeeded)\n    forget peer-url@web-4 (last succeeded)\n")
			code, out, _ = c.run("status")
			require.Equal(t, cli.ExitOK, code)
			require.Contains(t, out, "member@web-4")
			require.Contains(t, out, "node web-4: node web-4 left the deployment; prov apply -spec")

			l.failing = failing
			code, out, errs = c.run("apply")
			if failing {
				require.Equal(t, cli.ExitFailure, code, out)
				require.Contains(t, errs, "graph: removing node web-4: undo of member@web-4 failed: member-remove: no reply from the cluster; the node was not deleted and nothing else ran")
				require.Contains(t, errs, "to remove node web-4 although its undo fails (it is already gone, say): prov apply -spec ")
				require.Contains(t, errs, " -force-remove web-4\n")
				require.Equal(t, 4, c.drv.Count(), "not deleted")
				code, out, _ = c.run("status")
				require.Equal(t, cli.ExitFailure, code, "a failed undo is a failure")
				require.Contains(t, out, "error: undo failed: member-remove: no reply from the cluster")
				code, out, errs = c.run("apply", "-force-remove", "web-4")
				require.Equal(t, cli.ExitOK, code, errs)
				require.Contains(t, out, "removed node web-4 by force; its failed undos: graph: removing node web-4: undo of member@web-4 failed")
			} else {
				require.Equal(t, cli.ExitOK, code, errs)
				require.Contains(t, out, "removed node web-4\n")
			}
			require.Contains(t, out, "apply shrink: 4 succeeded, 0 failed, 0 blocked")
			require.Equal(t, 3, c.drv.Count(), "the node is deleted")
			require.Equal(t, "undo member@web-4", l.lines[len(l.lines)-1])

			code, out, errs = c.run("status")
			require.Equal(t, cli.ExitOK, code, errs)
			require.NotContains(t, out, "@web-4")
			require.NotContains(t, out, "node web-4")
			require.Contains(t, out, "shrink: 4 succeeded, 3 skipped\n")
			code, out, _ = c.run("plan")
			require.Equal(t, cli.ExitOK, code)
			require.Equal(t, "no changes: shrink is converged (7 node-roles)\n", out)
		})
	}
}

// On real lab nodes: a node dropped from the spec is deleted by apply
// (namespace, veth and init gone), and destroy with the smaller spec
// leaves nothing of the lab.
func TestShrinkOnTheLab(t *testing.T) {
	if err := lab.Check(); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("lab nodes cannot run here: " + err.Error())
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	labDir := filepath.Join(tmp, "lab")
	name := fmt.Sprintf("removal-s%d", os.Getpid())
	specFile := filepath.Join(tmp, "lab.hcl")
	writeSpec := func(nodes string) {
		require.NoError(t, os.WriteFile(specFile, []byte(fmt.Sprintf(`deployment = "shrinklab"
provider "lab" {
  name = %q
  dir  = %q
}
pool "web" {
  nodes = [%s]
}
role "hostname" {
  on = [pool.web]
}
`, name, labDir, nodes)), 0o644))
	}
	state := filepath.Join(tmp, "lab.state")
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := cli.Run(ctx, cli.App{Name: "prov", Registry: labRegistry(""), Stdout: &out, Stderr: &out},
			append(args, "-spec", specFile, "-state", state), nil)
		return code, out.String()
	}
	t.Cleanup(func() {
		if l, err := lab.Open(context.Background(), lab.Options{Name: name, Dir: labDir}); err == nil {
			_ = l.Teardown(context.Background())
		}
	})
	writeSpec(`"n1", "n2", "n3"`)
	code, out := run("apply")
	require.Equal(t, cli.ExitOK, code, out)
	l, err := lab.Open(ctx, lab.Options{Name: name, Dir: labDir})
	require.NoError(t, err)
	bridge := l.Bridge()
	nodes, err := l.Provider().List(ctx)
	require.NoError(t, err)
	var infos []*lab.NodeInfo
	n3 := ""
	for _, n := range nodes {
		var info *lab.NodeInfo
		require.True(t, n.As(&info))
		infos = append(infos, info)
		if n.Name == "n3" {
			n3 = n.ID
		}
	}
	require.Len(t, infos, 3)
	require.NotEmpty(t, n3)

	// A daemon started the way the lab's doc says (nsenter --net only) on
	// the node that leaves, and one on a node that stays.
	marks := map[string]string{}
	for k, n := range nodes {
		marks[n.Name] = fmt.Sprint(100000 + os.Getpid()*10 + k)
		require.NoError(t, exec.Command("setsid", "-f", "nsenter", "--net="+infos[k].NetNS, "sleep", marks[n.Name]).Run())
		require.Eventually(t, func() bool { return liveWithArgs("sleep", marks[n.Name]) }, 5*time.Second, 10*time.Millisecond)
	}

	writeSpec(`"n1", "n2"`)
	code, out = run("plan")
	require.Equal(t, cli.ExitOK, code, out)
	require.Contains(t, out, "  remove         node n3: node n3 left the deployment\n")
	require.Contains(t, out, "  forget         hostname@n3: the role has no Undo\n")
	code, out = run("apply")
	require.Equal(t, cli.ExitOK, code, out)
	require.Contains(t, out, "removed node n3\n")
	_, err = l.Provider().Get(ctx, n3)
	require.ErrorIs(t, err, provider.ErrNotFound)
	var gone *lab.NodeInfo
	for k, n := range nodes {
		if n.ID == n3 {
			gone = infos[k]
		}
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(gone.PID, &ws, unix.WNOHANG, nil)
	require.Empty(t, labLeftovers(t, filepath.Join(tmp, "no-such-dir"), "no-such-bridge", []*lab.NodeInfo{gone}), "n3 is gone from the machine")
	require.False(t, liveWithArgs("sleep", marks["n3"]), "n3's daemon ended with it")
	require.True(t, liveWithArgs("sleep", marks["n1"]), "n1's daemon runs on")
	code, out = run("status")
	require.Equal(t, cli.ExitOK, code, out)
	require.NotContains(t, out, "@n3")

	code, out = run("destroy", "-yes")
	require.Equal(t, cli.ExitOK, code, out)
	require.Contains(t, out, "removed what provider lab made for the deployment")
	require.Empty(t, labLeftovers(t, labDir, bridge, infos), "after destroy: %s", out)
	for _, m := range marks {
		require.False(t, liveWithArgs("sleep", m), "daemon %s ended with the lab", m)
	}
}

// liveWithArgs reports whether a process that is not a zombie runs with
// exactly these arguments.
func liveWithArgs(args ...string) bool {
	want := strings.Join(args, "\x00") + "\x00"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || string(b) != want {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
			return true
		}
	}
	return false
}
