package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/internal/childtest"
)

// controllerEnv makes the test binary run Up as a separate controller
// process, with the config in the variable's JSON, for the crash test.
const controllerEnv = "MASON_SWARM_CONTROLLER"

func init() { children[controllerEnv] = controllerProcess }

// controllerProcess runs Up until it is killed.
func controllerProcess(t childtest.T) {
	var cfg swarm.Config
	require.NoError(t, json.Unmarshal([]byte(os.Getenv(controllerEnv)), &cfg))
	cfg.Out = os.Stdout
	_, err := swarm.Up(context.Background(), cfg)
	require.NoError(t, err)
}

// TestCrashResume kills the controller twice — right after the swarm was
// initialised, then while a worker joins — and runs it again: it
// converges, the swarm was initialised once, and every node joined once.
func TestCrashResume(t *testing.T) {
	needs(t)
	ctx := ctxT(t, 8*time.Minute)
	// The killed controllers' node inits are adopted by this process, so
	// teardown can reap them.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	cfg, _, _ := testConfig(t, "e2e-swarm-crash", 1, 2)
	// Every controller, killed or not, logs to StateDir/swarm.log.
	cfg.Log = nil
	logFile := filepath.Join(cfg.StateDir, "swarm.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("role logs:\n%s", b)
		}
	})

	child := cfg
	child.Out = nil
	js, err := json.Marshal(child)
	require.NoError(t, err)

	for _, killAt := range []string{`msg="initialised the swarm"`, `msg="joining the swarm" role=swarm-worker node=w1`} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), controllerEnv+"="+string(js))
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(logFile)
			return strings.Contains(string(b), killAt)
		}, 3*time.Minute, 20*time.Millisecond, "the controller got to %s:\n%s", killAt, out)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		t.Logf("killed the controller at %s", killAt)
	}

	// Running again converges.
	s, err := swarm.Up(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "w1", "w2"}, s.Answered)
	b, err := os.ReadFile(logFile)
	require.NoError(t, err)
	log := string(b)
	require.Equal(t, 1, strings.Count(log, `msg="initialised the swarm"`), "the swarm was initialised once")
	// Each node is in the swarm once: a second join would have left a
	// second, down entry for the same hostname.
	require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker", "w2 ready active worker"}, swarmNodes(t, ctx, operator(t, s, s.Managers[0])))
	for _, w := range []string{"w1", "w2"} {
		// A second request would only follow a first that never reached
		// the engine (killed between the log line and the request).
		t.Logf("%s: %d join request(s)", w, strings.Count(log, fmt.Sprintf(`msg="joining the swarm" role=swarm-worker node=%s`, w)))
	}

	again, err := swarm.Up(ctx, cfg)
	require.NoError(t, err)
	require.Empty(t, succeeded(again.Result), "converged")
}
