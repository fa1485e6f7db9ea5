package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/provider/lab"
)

// exampleEnv runs the example's main in a child process, with the
// arguments it holds (separated by \x1f).
const exampleEnv = "MASON_ETCD_EXAMPLE_ARGS"

func TestMain(m *testing.M) {
	childtest.Dispatch(map[string]func(childtest.T){exampleEnv: func(childtest.T) {
		os.Args = append([]string{"etcd-example"}, strings.Split(os.Getenv(exampleEnv), "\x1f")...)
		main()
	}})
	os.Exit(m.Run())
}

// example starts the example as its own process.
func example(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), exampleEnv+"="+strings.Join(args, "\x1f"))
	return cmd
}

// The faults of the state integrity issue, against the real example on a
// real lab: two controllers started together, a state file removed or
// emptied, a lost key, an impossible member count. Each is refused with a
// message that says what was found, nothing is created, and the running
// cluster still answers with the operator's original certificate.
func TestStateIntegrity(t *testing.T) {
	needs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	labName := fmt.Sprintf("e2e-int-%d", os.Getpid())
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := etcd.Config{Lab: labName, StateDir: stateDir, Members: 3}
	t.Cleanup(func() { _ = etcd.Destroy(context.Background(), cfg) })
	args := []string{"-lab", labName, "-state", stateDir, "-progress", "lines"}

	// Two controllers started together on a new deployment: one deploys,
	// the other stops at the state file's lock before it creates anything.
	first, second := example(args...), example(args...)
	var out1, out2 bytes.Buffer
	first.Stdout, first.Stderr = &out1, &out1
	second.Stdout, second.Stderr = &out2, &out2
	require.NoError(t, first.Start())
	require.NoError(t, second.Start())
	err1, err2 := first.Wait(), second.Wait()
	if err1 != nil { // which one won is up to the scheduler
		err1, err2 = err2, err1
		out1, out2 = out2, out1
	}
	require.NoError(t, err1, out1.String())
	require.Error(t, err2, out2.String())
	require.Regexp(t, `state file `+regexp.QuoteMeta(filepath.Join(stateDir, "state.db"))+` is held by etcd example \(pid \d+ on [^,]+, since [^)]+\); stop that process or wait for it to finish`, out2.String())
	require.NotContains(t, out2.String(), "created node", "the second controller created nothing")
	require.Contains(t, out1.String(), "etcd ready: 3 members")

	// A run after both converges: nothing drifted, nothing half-built.
	var log bytes.Buffer
	cfg.Out = &log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first controller:\n%s\nsecond:\n%s\nlater runs:\n%s", out1.String(), out2.String(), log.String())
		}
	})
	s, err := etcd.Up(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, len(s.Plan.Steps), s.Plan.Count(graph.ActionSkip), "converged after the race: %v", s.Plan)

	operator, err := tls.LoadX509KeyPair(s.Operator.CertFile, s.Operator.KeyFile)
	require.NoError(t, err)
	ca, err := os.ReadFile(s.Operator.CAFile)
	require.NoError(t, err)
	stillAnswers := func(what string) {
		t.Helper()
		tlsCfg, err := etcd.ClientTLS(operator, ca)
		require.NoError(t, err)
		cli, err := etcd.Dial(s.Endpoints, tlsCfg)
		require.NoError(t, err)
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = cli.Put(cctx, "integrity/"+what, what)
		require.NoError(t, err, "after %s the cluster answers with the original certificates", what)
	}
	nodesNow := func() int {
		l, err := lab.Open(ctx, lab.Options{Name: labName})
		require.NoError(t, err)
		ns, err := l.Provider().List(ctx)
		require.NoError(t, err)
		return len(ns)
	}
	statePath := filepath.Join(stateDir, "state.db")
	saved, err := os.ReadFile(statePath)
	require.NoError(t, err)
	kek, err := os.ReadFile(filepath.Join(stateDir, "kek"))
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		fault func()
		want  string
	}{
		{"state file removed", func() { require.NoError(t, os.Remove(statePath)) }, "state file " + statePath + " did not exist, but provider lab still holds 3 nodes of deployment " + labName + " (n1, n2, n3)"},
		{"state file emptied", func() { require.NoError(t, os.WriteFile(statePath, nil, 0o600)) }, "state file " + statePath + " is empty, but provider lab still holds 3 nodes"},
		{"key removed", func() { require.NoError(t, os.Remove(filepath.Join(stateDir, "kek"))) },
			"deployment " + labName + " in state file " + statePath + " exists, but its key-encryption key is missing (looked for key file " + filepath.Join(stateDir, "kek") + " or environment variable MASON_ETCD_KEK)"},
		{"another key", func() {
			require.NoError(t, os.WriteFile(filepath.Join(stateDir, "kek"), bytes.Repeat([]byte{7}, 32), 0o600))
		},
			"the key-encryption key from key file " + filepath.Join(stateDir, "kek") + " or environment variable MASON_ETCD_KEK is not the one deployment " + labName + " in state file " + statePath + " was sealed with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fault()
			_, err := etcd.Up(ctx, cfg)
			require.ErrorContains(t, err, tc.want)
			var lost *deploy.LostStateError
			if strings.HasPrefix(tc.name, "state") {
				require.ErrorAs(t, err, &lost)
				require.Contains(t, err.Error(), "or, to start over, run go run ./examples/etcd -lab "+labName+" -state "+stateDir+" destroy to remove the nodes first")
			}
			require.Equal(t, 3, nodesNow())
			_, err = os.Stat(filepath.Join(stateDir, "kek"))
			require.Equal(t, tc.name == "key removed", errors.Is(err, os.ErrNotExist), "no new key was made")
			stillAnswers(tc.name)
			// Restored, all is well again.
			require.NoError(t, os.WriteFile(statePath, saved, 0o600))
			require.NoError(t, os.WriteFile(filepath.Join(stateDir, "kek"), kek, 0o600))
			again, err := etcd.Up(ctx, cfg)
			require.NoError(t, err)
			require.Zero(t, again.Result.Count(graph.StateSucceeded), "restored: nothing ran")
		})
	}

	t.Run("more members than the lab has addresses", func(t *testing.T) {
		big := cfg
		big.Members = 100000
		_, err := etcd.Up(ctx, big)
		require.ErrorContains(t, err, "wants 100000 nodes, 99997 of them new, and provider lab holds 3 nodes already; it can hold at most 253: nothing was created")
		require.Equal(t, 3, nodesNow())
		stillAnswers("capacity")
	})
}
