package unitop

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

func TestOutcome(t *testing.T) {
	out, err := Outcome("lab", "status", "etcd", provider.Result{Stdout: []byte("state=running\n")}, nil)
	require.NoError(t, err)
	require.Equal(t, "state=running\n", out)

	_, err = Outcome("lab", "start", "etcd", provider.Result{ExitCode: ExitNotInstalled}, nil)
	require.ErrorIs(t, err, provider.ErrUnitNotFound)
	require.EqualError(t, err, "lab: start unit etcd: unit not installed")

	_, err = Outcome("systemd", "stop", "etcd", provider.Result{ExitCode: 1, Stderr: []byte("Job failed.\n")}, nil)
	require.EqualError(t, err, "systemd: stop unit etcd: Job failed.")
	_, err = Outcome("systemd", "stop", "etcd", provider.Result{ExitCode: 3}, nil)
	require.EqualError(t, err, "systemd: stop unit etcd: exit status 3", "never an empty reason")

	broken := errors.New("connection reset")
	_, err = Outcome("systemd", "logs", "etcd", provider.Result{}, broken)
	require.ErrorIs(t, err, broken)
}

func TestCheckProgram(t *testing.T) {
	run := func(prog string) (int, string) {
		u := provider.Unit{Name: "x", Command: []string{prog}}
		out, err := exec.Command("sh", "-c", CheckProgram(u)).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err)
		return 0, string(out)
	}
	code, _ := run("/bin/sh")
	require.Zero(t, code)
	code, msg := run("/nonexistent/it's a daemon")
	require.Equal(t, ExitNotExecutable, code)
	require.Equal(t, "unit x: /nonexistent/it's a daemon is not an executable file on this node\n", msg)
	plain := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644))
	code, _ = run(plain)
	require.Equal(t, ExitNotExecutable, code, "a file that is not executable")
	code, _ = run("/etc")
	require.Equal(t, ExitNotExecutable, code, "a directory")
}
