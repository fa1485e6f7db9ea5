package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/internal/childtest"
)

// frontEndEnv makes the test binary run mason's front end over the
// example's registry (what `go run ./examples/swarm spec ARGS` runs), with
// the arguments in the variable's JSON.
const frontEndEnv = "MASON_SWARM_FRONT_END"

func init() { children[frontEndEnv] = frontEndProcess }

func frontEndProcess(t childtest.T) {
	var args []string
	require.NoError(t, json.Unmarshal([]byte(os.Getenv(frontEndEnv)), &args))
	os.Exit(cli.Run(context.Background(), swarm.FrontEnd(), args, os.Environ()))
}

// frontEnd runs the front end on swarm.hcl against cfg's lab and state, in
// a process of its own (as a user would), and returns its exit code and
// output.
func frontEnd(t *testing.T, cfg swarm.Config, command string, extra ...string) (int, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	args := append([]string{command, "-spec", "swarm.hcl", "-state", cfg.StateDir + "/state.db",
		"-var", "lab=" + cfg.Lab, "-var", "lab_dir=" + cfg.LabDir, "-var", "state_dir=" + cfg.StateDir,
		"-var", "netsvcd=" + exe}, extra...)
	js, err := json.Marshal(args)
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), frontEndEnv+"="+string(js))
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, string(out)
}
