package cli_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/internal/memprovider"
	"github.com/masonops/mason/provider"
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
