package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/provider"
)

// helperEnv selects what TestHelperProcess does when the test binary runs
// itself as a separate controller process.
const helperEnv = "MASON_LAB_HELPER"

// TestMain runs the test binary as the controller process that
// TestControllerCrash starts and kills, when helperEnv is set.
func TestMain(m *testing.M) {
	childtest.Dispatch(map[string]func(childtest.T){helperEnv: helperProcess})
	os.Exit(m.Run())
}

// helperProcess is the controller process TestControllerCrash starts and
// kills (and the non-root probe).
func helperProcess(childtest.T) {
	mode := os.Getenv(helperEnv)
	ctx := context.Background()
	if mode == "notroot" {
		_, err := Open(ctx, Options{Name: "nobody-lab", Dir: os.Getenv("MASON_LAB_DIR")})
		fmt.Println(err)
		return
	}
	l, err := Open(ctx, Options{Name: os.Getenv("MASON_LAB_NAME"), Dir: os.Getenv("MASON_LAB_DIR")})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	p := l.Provider()
	enc := json.NewEncoder(os.Stdout)
	switch mode {
	case "create":
		var nodes []*provider.Node
		for i := range 2 {
			n, err := p.Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("c%d", i)})
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			cmd := provider.Command{Args: []string{"sh", "-c", "setsid sleep " + os.Getenv("MASON_LAB_MARK") + " </dev/null >/dev/null 2>&1 &"}}
			if res, err := n.Transport.Run(ctx, cmd); err != nil || res.ExitCode != 0 {
				fmt.Println("error", err, res.ExitCode)
				os.Exit(1)
			}
			nodes = append(nodes, n)
		}
		var infos []*NodeInfo
		for _, n := range nodes {
			var info *NodeInfo
			n.As(&info)
			infos = append(infos, info)
		}
		_ = enc.Encode(infos)
		// Crash here: the parent sends SIGKILL while we wait.
		time.Sleep(time.Minute)
		os.Exit(3)
	case "create-same":
		// Two of these run at once against the same lab.
		type made struct {
			ID   string
			Addr netip.Addr
			PID  int
		}
		var out []made
		for i := range 4 {
			n, err := p.Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("x%d", i)})
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			var info *NodeInfo
			n.As(&info)
			out = append(out, made{n.ID, n.InterfaceAddr, info.PID})
		}
		_ = enc.Encode(out)
		os.Exit(0)
	case "unit":
		// Start a unit and end normally: the unit must outlive us.
		n, err := p.Create(ctx, provider.NodeSpec{ID: "u0"})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		units, err := provider.UnitsOf(n)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		_, err = units.InstallUnit(ctx, provider.Unit{Name: "marked", Command: []string{"/bin/sleep", os.Getenv("MASON_LAB_MARK")}, RestartDelay: 100 * time.Millisecond})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		var info *NodeInfo
		n.As(&info)
		_ = enc.Encode(info)
		os.Exit(0)
	case "teardown":
		nodes, err := p.List(ctx)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		var found []string
		for _, n := range nodes {
			if err := provider.Ready(ctx, n); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			found = append(found, n.ID+"="+n.InterfaceAddr.String())
		}
		_ = enc.Encode(found)
		if err := l.Teardown(ctx); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// helper starts the test binary as a controller process in the given mode.
func helper(t *testing.T, mode, name, dir, mark string) (*exec.Cmd, *bufio.Reader) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "MASON_LAB_NAME="+name, "MASON_LAB_DIR="+dir, "MASON_LAB_MARK="+mark)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// A no-op when the test already waited for it.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

func TestControllerCrash(t *testing.T) {
	needLab(t)
	// Nodes of the killed controller are re-parented to us instead of to
	// the host's PID 1, so we can collect them and check nothing is left.
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	name, dir := uniqueName("crash"), t.TempDir()
	t.Cleanup(func() {
		// Whatever happened above, leave nothing behind.
		if _, err := os.Stat(dir + "/state.json"); err == nil {
			if l, err := Open(context.Background(), Options{Name: name, Dir: dir}); err == nil {
				_ = l.Teardown(context.Background())
			}
		}
	})

	// A unique sleep duration marks the processes started in the nodes.
	mark := fmt.Sprintf("%d.%06d", 5000+os.Getpid()%1000, time.Now().UnixNano()%1e6)
	ctrl, out := helper(t, "create", name, dir, mark)
	line, err := out.ReadString('\n')
	require.NoError(t, err, "controller output: %q", line)
	var infos []*NodeInfo
	require.NoError(t, json.Unmarshal([]byte(line), &infos), "controller said %q", line)
	require.Len(t, infos, 2)

	require.NoError(t, ctrl.Process.Signal(unix.SIGKILL))
	_ = ctrl.Wait()
	require.Equal(t, "signal: killed", ctrl.ProcessState.String())

	// The nodes outlived their controller.
	for _, info := range infos {
		require.False(t, exited(info.PID), "node init %d survives the controller", info.PID)
	}
	require.Len(t, hostProcsWithArg(mark), 2, "processes started in the nodes survive the controller")
	var fp footprint
	l, err := Open(context.Background(), Options{Name: name, Dir: dir})
	require.NoError(t, err)
	nodes, err := l.Provider().List(context.Background())
	require.NoError(t, err)
	fp = footprintOf(t, l, nodes)

	// A new controller process finds them and tears the lab down.
	ctrl2, out2 := helper(t, "teardown", name, dir, mark)
	line, err = out2.ReadString('\n')
	require.NoError(t, err)
	var found []string
	require.NoError(t, json.Unmarshal([]byte(line), &found), "second controller said %q", line)
	require.Len(t, found, 2, "List from a new process finds both nodes")
	require.True(t, strings.HasPrefix(found[0], "c0="))
	require.NoError(t, ctrl2.Wait(), "teardown from a new process")

	for _, pid := range fp.pids {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil) // adopted by us as subreaper
	}
	require.Eventually(t, func() bool { return len(hostProcsWithArg(mark)) == 0 }, 5*time.Second, 50*time.Millisecond)
	fp.requireGone(t)
}

func TestNotRootIsAClearError(t *testing.T) {
	needLab(t)
	// Run a copy of this test binary as nobody (the build directory is
	// private to root).
	dir, err := os.MkdirTemp("", "mason-lab-notroot-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	self, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	bin := dir + "/lab.test"
	require.NoError(t, os.WriteFile(bin, self, 0o755))

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{helperEnv + "=notroot", "MASON_LAB_DIR=" + dir + "/lab", "PATH=" + os.Getenv("PATH")}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "lab: needs root to create namespaces, bridges and firewall rules (running as uid 65534): run as root")
	_, err = os.Stat(dir + "/lab")
	require.ErrorIs(t, err, os.ErrNotExist, "nothing is created")
}
