package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/provider/ssh"
)

// needTools skips (outside CI) or fails (in CI) without labs, sshd or
// Ansible.
func needTools(t *testing.T, ansible bool) {
	t.Helper()
	err := lab.Check()
	if err == nil {
		if _, e := os.Stat("/usr/sbin/sshd"); e != nil {
			err = fmt.Errorf("sshd missing (Debian package openssh-server): %w", e)
		}
	}
	if err == nil && ansible {
		if _, e := exec.LookPath("ansible-playbook"); e != nil {
			err = fmt.Errorf("ansible-playbook missing (Debian package ansible-core): %w", e)
		}
	}
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("the fleet bench needs lab nodes with sshd and Ansible: %v", err)
		}
		t.Fatal(err)
	}
}

// TestMain lets the test binary serve as the ssh connection holder the
// mason runs start, as fleetbench itself does.
func TestMain(m *testing.M) {
	ssh.HolderMain()
	os.Exit(m.Run())
}

// The mason side and the checker: verify accepts what mason built, and
// rejects a tampered node until mason repairs it. The runs after the
// first reuse the connections of the holder the first one started.
func TestMasonSideAndVerify(t *testing.T) {
	needTools(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	require.NoError(t, up(ctx, dir, fmt.Sprintf("fleettest-%d", os.Getpid()), 2))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		require.NoError(t, down(ctx, dir))
	})
	state := filepath.Join(dir, "mason.state")
	hold := filepath.Join(dir, holderDir)
	applyMason := func(ctx context.Context, dir, version, state string, again int) error {
		return applyMason(ctx, dir, version, state, again, hold, time.Minute)
	}
	require.Error(t, verify(ctx, dir, "1", 1, ""), "nothing applied yet")
	require.NoError(t, applyMason(ctx, dir, "1", state, 0))
	// The holder this test's first run started ends with the test.
	pidText, err := os.ReadFile(filepath.Join(hold, "holder.lock"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	require.NoError(t, err)
	require.NotEqual(t, os.Getpid(), pid)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
	require.NoError(t, verify(ctx, dir, "1", 1, ""))
	require.NoError(t, applyMason(ctx, dir, "1", state, 0))
	require.NoError(t, verify(ctx, dir, "1", 1, ""), "a converged re-run runs the command again nowhere")
	require.NoError(t, tamper(ctx, dir, "n02"))
	err = verify(ctx, dir, "1", 1, "")
	require.ErrorContains(t, err, "n02: config is")
	require.NotContains(t, err.Error(), "n01")
	require.NoError(t, applyMason(ctx, dir, "1", state, 0))
	require.NoError(t, verify(ctx, dir, "1", 1, "n02"), "drift repaired, the command ran once more on n02 only")
	require.Error(t, verify(ctx, dir, "2", 1, "n02"))
	require.NoError(t, applyMason(ctx, dir, "2", state, 0))
	require.NoError(t, verify(ctx, dir, "2", 2, "n02"))
}

// The whole bench, short: 3 nodes, one round, every tool; every run's end
// state is verified by the script itself.
func TestFleetScriptShort(t *testing.T) {
	needTools(t, true)
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("runs Ansible: minutes (never skipped in CI)")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	// Minutes on a quiet machine; a shared, loaded one can make Ansible
	// far slower, so the bound is the package's timeout less a margin.
	ctx, cancel := context.WithTimeout(context.Background(), 38*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "bench", "fleet.sh"))
	cmd.Env = append(os.Environ(), "FLEET_NODES=3", "FLEET_ROUNDS=1", "FLEET_BUDGET=2000")
	// On timeout the script gets SIGTERM and removes its lab itself.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Minute
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stderr:\n%s", stderr.String())

	tools := 2
	if strings.Contains(stderr.String(), ", mitogen: ") {
		tools = 3
	}
	// The script prints each verification on stderr, the table on stdout.
	require.Equal(t, 4*tools, strings.Count(stderr.String(), "verify: 3 nodes ok"), "every run of every tool verified:\n%s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.GreaterOrEqual(t, len(lines), 4)
	last := lines[len(lines)-4:]
	for i, phase := range phases {
		m := regexp.MustCompile(`^` + phase + ` ansible/mason ([0-9.]+)$`).FindStringSubmatch(last[i])
		require.NotNil(t, m, "line %q", last[i])
		r, err := strconv.ParseFloat(m[1], 64)
		require.NoError(t, err)
		require.Greater(t, r, 0.0)
	}
	m := regexp.MustCompile(`# work directory (\S+)`).FindStringSubmatch(stderr.String())
	require.NotNil(t, m)
	require.NoDirExists(t, m[1], "the script removes its work directory")
}

func TestReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "times.tsv")
	var b strings.Builder
	for round := 1; round <= 3; round++ {
		for _, ph := range phases {
			fmt.Fprintf(&b, "10\t%d\t%s\tmason\t%d\n", round, ph, round)
			fmt.Fprintf(&b, "10\t%d\t%s\tansible\t%d\n", round, ph, 10*round*round)
		}
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	var out bytes.Buffer
	require.NoError(t, report(&out, path))
	// Ratios per round: 10, 20, 30.
	require.Contains(t, out.String(), "10.0 / 20.0 / 30.0")
	require.True(t, strings.HasSuffix(out.String(), "cold ansible/mason 20.0\nconverged ansible/mason 20.0\nchanged ansible/mason 20.0\ndrift ansible/mason 20.0\n"), out.String())
}
