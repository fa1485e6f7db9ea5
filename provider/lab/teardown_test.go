package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
)

// startInNetNS starts `sleep mark` on the host with only the node's
// network namespace (nsenter --net, the way the lab's doc says to start a
// dockerd), detached from us as a daemon would be.
func startInNetNS(t *testing.T, n *provider.Node, mark string) {
	t.Helper()
	var info *NodeInfo
	require.True(t, n.As(&info))
	cmd := exec.Command("setsid", "-f", "nsenter", "--net="+info.NetNS, "sleep", mark)
	require.NoError(t, cmd.Run())
	require.Eventually(t, func() bool { return len(hostProcsWithArg(mark)) == 1 }, 5*time.Second, 10*time.Millisecond)
}

// Delete and Teardown end processes that joined only a node's network
// namespace: they are found by the namespace's inode, not by PID
// namespace, and nothing of another node is touched.
func TestTeardownEndsNetNSOnlyProcesses(t *testing.T) {
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	l := openLab(t, Options{})
	ctx := ctxT(t, 2*time.Minute)
	a, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "a"})
	require.NoError(t, err)
	b, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "b"})
	require.NoError(t, err)
	markA := fmt.Sprintf("%d.%06d", 6100+os.Getpid()%100, time.Now().UnixNano()%1e6)
	markB := fmt.Sprintf("%d.%06d", 6200+os.Getpid()%100, time.Now().UnixNano()%1e6)
	startInNetNS(t, a, markA)
	startInNetNS(t, b, markB)
	fp := footprintOf(t, l, []*provider.Node{a, b})

	require.NoError(t, l.Provider().Delete(ctx, "a"))
	require.Eventually(t, func() bool { return len(hostProcsWithArg(markA)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"deleting node a ended the process in its network namespace")
	require.Len(t, hostProcsWithArg(markB), 1, "node b's process is untouched")
	require.NoError(t, provider.Ready(ctx, b))

	// A node whose init died (killed from outside) still has its
	// nsenter'd process; teardown ends it too.
	var info *NodeInfo
	require.True(t, b.As(&info))
	require.NoError(t, unix.Kill(info.PID, unix.SIGKILL))
	require.Eventually(t, func() bool { reap(info.PID); return exited(info.PID) }, 5*time.Second, 10*time.Millisecond)
	require.Len(t, hostProcsWithArg(markB), 1, "the nsenter'd process outlives its node's init")
	require.NoError(t, l.Teardown(ctx))
	require.Eventually(t, func() bool { return len(hostProcsWithArg(markB)) == 0 }, 10*time.Second, 20*time.Millisecond)
	fp.requireGone(t)
}

// Remove tears a lab down without creating anything, after a controller
// crash left a node half-gone and the state file corrupt.
func TestRemoveAfterCrashAndCorruptState(t *testing.T) {
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	needLab(t)
	name, dir := uniqueName("rm"), t.TempDir()
	ctx := ctxT(t, 2*time.Minute)
	l, err := Open(ctx, Options{Name: name, Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Remove(context.Background(), Options{Name: name, Dir: dir}) })
	var nodes []*provider.Node
	for i := range 3 {
		n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("n%d", i)})
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	mark := fmt.Sprintf("%d.%06d", 6300+os.Getpid()%100, time.Now().UnixNano()%1e6)
	startInNetNS(t, nodes[2], mark)
	fp := footprintOf(t, l, nodes)
	// Node 0 is gone already (its init killed), and the state file is
	// garbage.
	var info *NodeInfo
	require.True(t, nodes[0].As(&info))
	require.NoError(t, unix.Kill(info.PID, unix.SIGKILL))
	require.NoError(t, os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600))

	_, err = Open(ctx, Options{Name: name, Dir: dir})
	require.ErrorContains(t, err, "corrupt")
	require.NoError(t, Remove(ctx, Options{Name: name, Dir: dir}))
	require.Eventually(t, func() bool { return len(hostProcsWithArg(mark)) == 0 }, 10*time.Second, 20*time.Millisecond)
	for _, pid := range fp.pids {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	}
	fp.requireGone(t)
	require.NoError(t, Remove(ctx, Options{Name: name, Dir: dir}), "removing a removed lab succeeds")
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "Remove creates nothing")
	require.False(t, linkExists(fp.bridge))
}

func TestRemoveRefusesAnotherLabsDirectory(t *testing.T) {
	l := openLab(t, Options{})
	err := Remove(ctxT(t, time.Minute), Options{Name: "someone-else", Dir: l.Dir()})
	require.ErrorContains(t, err, "belongs to lab")
	require.True(t, linkExists(l.Bridge()), "nothing removed")
}

// Two controller processes creating the same nodes at the same moment
// share them: neither takes the other's half-made node for leftovers.
func TestCreateAcrossProcesses(t *testing.T) {
	needLab(t)
	name, dir := uniqueName("xproc"), t.TempDir()
	t.Cleanup(func() { _ = Remove(context.Background(), Options{Name: name, Dir: dir}) })
	// The lab exists before both start, as the example's lab would.
	_, err := Open(ctxT(t, time.Minute), Options{Name: name, Dir: dir})
	require.NoError(t, err)
	type made struct {
		ID   string
		Addr netip.Addr
		PID  int
	}
	var outs [][]made
	var procs []*exec.Cmd
	var readers []func() string
	for range 2 {
		cmd, out := helper(t, "create-same", name, dir, "")
		procs = append(procs, cmd)
		readers = append(readers, func() string { s, _ := out.ReadString('\n'); return s })
	}
	for i, cmd := range procs {
		line := readers[i]()
		var ms []made
		require.NoError(t, json.Unmarshal([]byte(line), &ms), "controller %d said %q", i, line)
		require.NoError(t, cmd.Wait())
		outs = append(outs, ms)
	}
	require.Equal(t, outs[0], outs[1], "both controllers see the same nodes, none made twice")
	require.Len(t, outs[0], 4)
	for _, m := range outs[0] {
		require.False(t, exited(m.PID), "node %s's first init still runs", m.ID)
	}
}

// The lab knows how many nodes fit in its subnet and says so before
// anything is created.
func TestCapacity(t *testing.T) {
	l := openLab(t, Options{Subnet: netip.MustParsePrefix("10.251.7.0/29")})
	ctx := ctxT(t, time.Minute)
	p := l.Provider()
	c, ok, err := p.Capacity(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 5, c.Free, "a /29 has 8 addresses: network, broadcast and the bridge's are not for nodes")
	_, err = p.Create(ctx, provider.NodeSpec{ID: "c0"})
	require.NoError(t, err)

	ids := []string{"c0", "c1", "c2", "c3", "c4", "c5"}
	err = p.CheckCapacity(ctx, ids)
	require.ErrorIs(t, err, provider.ErrNoCapacity)
	require.Contains(t, err.Error(), "5 new nodes requested but only 4 fit")
	require.Contains(t, err.Error(), "10.251.7.0/29")
	list, err := p.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1, "nothing created")
	require.NoError(t, p.CheckCapacity(ctx, ids[:5]), "c0 exists: four more fit")
}

// A node created for a deployment carries it, as seen by any process;
// another deployment cannot claim it; a node made before stamps existed
// gets its stamp on the next Create.
func TestDeploymentStamp(t *testing.T) {
	l := openLab(t, Options{})
	ctx := ctxT(t, time.Minute)
	p := l.Provider()
	_, err := p.Create(ctx, provider.NodeSpec{ID: "d0", Deployment: "etcd-prod"})
	require.NoError(t, err)
	again, err := Open(ctx, Options{Name: l.LabName(), Dir: l.Dir()})
	require.NoError(t, err)
	n, err := again.Provider().Get(ctx, "d0")
	require.NoError(t, err)
	require.Equal(t, "etcd-prod", n.Deployment())
	mine, err := again.Provider().DeploymentNodes(ctx, "etcd-prod")
	require.NoError(t, err)
	require.Len(t, mine, 1)

	_, err = p.Create(ctx, provider.NodeSpec{ID: "d0", Deployment: "etcd-test"})
	require.ErrorContains(t, err, `belongs to deployment "etcd-prod"`)

	_, err = p.Create(ctx, provider.NodeSpec{ID: "legacy"})
	require.NoError(t, err)
	n, err = p.Create(ctx, provider.NodeSpec{ID: "legacy", Deployment: "etcd-prod"})
	require.NoError(t, err)
	require.Equal(t, "etcd-prod", n.Deployment())
	n, err = p.Get(ctx, "legacy")
	require.NoError(t, err)
	require.Equal(t, "etcd-prod", n.Deployment(), "the stamp is kept")
}

func TestInitFateIsNeverEmpty(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	require.Equal(t, "was gone", initFate(cmd.Process.Pid))
	sleeper := exec.Command("sleep", "30")
	require.NoError(t, sleeper.Start())
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	require.NotEmpty(t, initFate(sleeper.Process.Pid))
	require.NoError(t, sleeper.Process.Signal(syscall.SIGKILL))
	require.Eventually(t, func() bool { return initFate(sleeper.Process.Pid) == "exited" }, 5*time.Second, 10*time.Millisecond)
}
