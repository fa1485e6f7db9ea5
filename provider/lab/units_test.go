package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/providertest"
)

func TestUnitsContract(t *testing.T) {
	l := openLab(t, Options{})
	ctx := ctxT(t, 5*time.Minute)
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "units"})
	require.NoError(t, err)
	providertest.RunUnits(t, n)
}

// A unit started by a controller that has exited keeps running, is
// restarted by the node's supervisor when killed, and is gone with the
// lab.
func TestUnitsOutliveTheController(t *testing.T) {
	needLab(t)
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	name, dir := uniqueName("units"), t.TempDir()
	mark := fmt.Sprintf("%d.%06d", 7000+os.Getpid()%1000, time.Now().UnixNano()%1e6)
	torn := false
	t.Cleanup(func() {
		if l, err := Open(ctxT(t, time.Minute), Options{Name: name, Dir: dir}); err == nil && !torn {
			_ = l.Teardown(ctxT(t, time.Minute))
		}
	})

	ctrl, out := helper(t, "unit", name, dir, mark)
	line, err := out.ReadString('\n')
	require.NoError(t, err, "controller said %q", line)
	var info NodeInfo
	require.NoError(t, json.Unmarshal([]byte(line), &info), "controller said %q", line)
	require.NoError(t, ctrl.Wait(), "the controller ends normally")

	ctx := ctxT(t, 2*time.Minute)
	l, err := Open(ctx, Options{Name: name, Dir: dir})
	require.NoError(t, err)
	n, err := l.Provider().Get(ctx, "u0")
	require.NoError(t, err)
	units, err := provider.UnitsOf(n)
	require.NoError(t, err)
	st, err := units.UnitStatus(ctx, "marked")
	require.NoError(t, err)
	require.True(t, st.Running(), "the unit runs after its controller exited: %s", &st)
	require.Len(t, hostProcsWithArg(mark), 1)

	// Nothing of ours runs in the node now but its own supervisor.
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"kill", "-9", fmt.Sprint(st.MainPID)}})
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, "%s", res.Stderr)
	require.Eventually(t, func() bool {
		again, err := units.UnitStatus(ctx, "marked")
		return err == nil && again.Running() && again.MainPID != st.MainPID && again.Restarts == 1
	}, 30*time.Second, 50*time.Millisecond, "the supervisor restarted the killed process")

	fp := footprintOf(t, l, []*provider.Node{n})
	require.NoError(t, l.Teardown(ctx))
	torn = true
	for _, pid := range fp.pids {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	}
	require.Eventually(t, func() bool { return len(hostProcsWithArg(mark)) == 0 }, 10*time.Second, 50*time.Millisecond,
		"the unit's process is gone with the lab")
	fp.requireGone(t)
}

// Run returns when the command exits, even if a process it started in the
// background still holds its output, and keeps everything the command
// wrote before it exited.
func TestExecReturnsWhileBackgroundHoldsOutput(t *testing.T) {
	l := openLab(t, Options{})
	ctx := ctxT(t, 2*time.Minute)
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "bg"})
	require.NoError(t, err)
	mark := fmt.Sprintf("%d.%06d", 8000+os.Getpid()%1000, time.Now().UnixNano()%1e6)
	// 1 MiB of output, more than a pipe holds, then a background sleeper
	// that keeps both pipes open.
	script := `head -c 1048576 /dev/zero | tr '\0' x; echo; echo err >&2; sleep "$1" &`
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", script, "sh", mark}})
	require.NoError(t, err)
	require.Zero(t, res.ExitCode)
	require.Equal(t, strings.Repeat("x", 1<<20)+"\n", string(res.Stdout))
	require.Equal(t, "err\n", string(res.Stderr))
	require.Len(t, hostProcsWithArg(mark), 1, "the background process still runs (and held the output) when Run returned")
}

// needSystemd skips (outside CI) or fails (in CI) when systemd lab nodes
// cannot run here.
func needSystemd(t *testing.T) {
	t.Helper()
	needLab(t)
	_, err := os.Stat(systemdBinary)
	if err == nil {
		_, err = cgroup2Root()
	}
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("systemd lab nodes need %s (Debian package systemd) and a cgroup2 hierarchy: %v", systemdBinary, err)
		}
		t.Fatal(err)
	}
}

// The same contract, against a real systemd: a lab node booted with the
// host's systemd as PID 1.
func TestUnitsContractSystemd(t *testing.T) {
	needSystemd(t)
	l := openLab(t, Options{})
	ctx := ctxT(t, 5*time.Minute)
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "sd", Image: provider.Image{ID: ImageSystemd}})
	require.NoError(t, err)
	require.Equal(t, ImageSystemd, n.Image.ID)
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "cat /proc/1/comm; systemctl is-system-running"}})
	require.NoError(t, err)
	require.Equal(t, "systemd\nrunning\n", string(res.Stdout), "%s", res.Stderr)
	providertest.RunUnits(t, n)
}

// A systemd node and its units are gone after teardown: no process, no
// cgroup, nothing of the lab.
func TestSystemdNodeTeardown(t *testing.T) {
	needSystemd(t)
	ctx := ctxT(t, 3*time.Minute)
	l, err := Open(ctx, Options{Name: uniqueName("sdtear"), Dir: t.TempDir()})
	require.NoError(t, err)
	torn := false
	t.Cleanup(func() {
		if !torn {
			_ = l.Teardown(context.Background())
		}
	})
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "sd", Image: provider.Image{ID: ImageSystemd}})
	require.NoError(t, err)
	mark := fmt.Sprintf("%d.%06d", 9000+os.Getpid()%1000, time.Now().UnixNano()%1e6)
	units, err := provider.UnitsOf(n)
	require.NoError(t, err)
	_, err = units.InstallUnit(ctx, provider.Unit{Name: "marked", Command: []string{"/bin/sleep", mark}})
	require.NoError(t, err)
	require.Len(t, hostProcsWithArg(mark), 1)
	cg, err := l.nodeCgroup("sd")
	require.NoError(t, err)
	require.DirExists(t, cg)

	fp := footprintOf(t, l, []*provider.Node{n})
	require.NoError(t, l.Teardown(ctx))
	torn = true
	require.Empty(t, hostProcsWithArg(mark))
	fp.requireGone(t)
	lc, err := l.labCgroup()
	require.NoError(t, err)
	require.NoDirExists(t, lc, "the lab's cgroups are removed")
}
