package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
)

// runOK runs a shell script in n and returns its stdout, failing the test
// on any error or non-zero exit.
func runOK(t *testing.T, ctx context.Context, n *provider.Node, script string) string {
	t.Helper()
	cmd := provider.Command{Args: []string{"sh", "-c", script}, Timeout: 30 * time.Second}
	res, err := n.Transport.Run(ctx, cmd)
	require.NoError(t, err)
	require.NoError(t, res.Err(cmd))
	return string(res.Stdout)
}

// listenInNode opens a real TCP listener inside the node's network
// namespace from this process: a locked OS thread enters the namespace,
// creates the socket (which stays bound to that namespace), and returns.
func listenInNode(t *testing.T, n *provider.Node, port int) net.Listener {
	t.Helper()
	var info *NodeInfo
	require.True(t, n.As(&info))
	var ln net.Listener
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is left locked on purpose: it exits with the
		// goroutine instead of returning to the pool in a foreign netns.
		orig, e := os.Open("/proc/thread-self/ns/net")
		if e != nil {
			err = e
			return
		}
		defer orig.Close()
		target, e := os.Open(info.NetNS)
		if e != nil {
			err = e
			return
		}
		defer target.Close()
		if e := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); e != nil {
			err = e
			return
		}
		ln, err = net.Listen("tcp", netip.AddrPortFrom(n.InterfaceAddr, uint16(port)).String())
	}()
	<-done
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestThreeNodes(t *testing.T) {
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, 2*time.Minute)

	var nodes []*provider.Node
	for i := range 3 {
		n, err := p.Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("n%d", i), Name: fmt.Sprintf("host-%d", i)})
		require.NoError(t, err)
		n, err = p.WaitReady(ctx, n.ID)
		require.NoError(t, err)
		nodes = append(nodes, n)
	}

	t.Run("distinct hostnames and addresses in the lab subnet", func(t *testing.T) {
		seenAddr := map[netip.Addr]bool{}
		seenMAC := map[string]bool{}
		for i, n := range nodes {
			require.Equal(t, fmt.Sprintf("host-%d\n", i), runOK(t, ctx, n, "hostname"))
			require.Equal(t, fmt.Sprintf("host-%d\n", i), runOK(t, ctx, n, "cat /etc/hostname"))
			require.True(t, l.Subnet().Contains(n.InterfaceAddr))
			require.False(t, seenAddr[n.InterfaceAddr])
			seenAddr[n.InterfaceAddr] = true
			require.Len(t, n.MACs, 1)
			require.False(t, seenMAC[n.MACs[0].String()])
			seenMAC[n.MACs[0].String()] = true
			require.Contains(t, runOK(t, ctx, n, "ip -br addr show dev eth0"), n.InterfaceAddr.String()+"/")
			require.Contains(t, runOK(t, ctx, n, "ip -br link show eth0"), n.MACs[0].String())
		}
		host, err := os.Hostname()
		require.NoError(t, err)
		require.NotContains(t, []string{"host-0", "host-1", "host-2"}, host, "the host's hostname is untouched")
	})

	t.Run("routes stay on the lab bridge", func(t *testing.T) {
		for _, n := range nodes {
			routes := runOK(t, ctx, n, "ip -4 route show table all | grep -v '^local\\|^broadcast' || true")
			require.NotContains(t, routes, "default", "no default route out of the machine")
			require.Equal(t, fmt.Sprintf("%s dev eth0 proto kernel scope link src %s", l.Subnet(), n.InterfaceAddr), strings.TrimSpace(routes))
		}
		out, err := output(ctx, "iptables", "-w", "5", "-t", "nat", "-S")
		require.NoError(t, err)
		require.NotContains(t, string(out), l.Bridge(), "no NAT for the lab")
		require.NotContains(t, string(out), l.Subnet().String(), "no NAT for the lab")
	})

	t.Run("nodes reach each other over TCP", func(t *testing.T) {
		const port = 7070
		var wg sync.WaitGroup
		for i, n := range nodes {
			ln := listenInNode(t, n, port)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range len(nodes) - 1 {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					line, _ := bufio.NewReader(c).ReadString('\n')
					fmt.Fprintf(c, "node %d heard %s", i, line)
					c.Close()
				}
			}()
		}
		for i, from := range nodes {
			for j, to := range nodes {
				if i == j {
					continue
				}
				script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d; echo "from %d" >&3; cat <&3`, to.InterfaceAddr, port, i)
				out := runOK(t, ctx, from, "bash -c '"+script+"'")
				require.Equal(t, fmt.Sprintf("node %d heard from %d\n", j, i), out)
			}
		}
		wg.Wait()
	})

	t.Run("private /etc, /var/lib, /var/log, /tmp, /run", func(t *testing.T) {
		tag := strconv.FormatInt(time.Now().UnixNano(), 36)
		for _, dir := range []string{"/etc", "/var/lib", "/var/log", "/tmp", "/run"} {
			path := filepath.Join(dir, "mason-test-"+tag, "daemon.json")
			for i, n := range nodes {
				require.NoError(t, n.Transport.Put(ctx, path, strings.NewReader(fmt.Sprintf(`{"node":%d}`, i)), provider.FileOptions{}))
			}
			for i, n := range nodes {
				got, err := n.Transport.Get(ctx, path)
				require.NoError(t, err)
				require.Equal(t, fmt.Sprintf(`{"node":%d}`, i), string(got), "%s is private to each node", dir)
			}
			_, err := os.Stat(path)
			require.ErrorIs(t, err, os.ErrNotExist, "the host does not see %s", path)
		}
		// /etc is copy-on-write over the host's: host files are visible.
		hostRelease, err := os.ReadFile("/etc/os-release")
		require.NoError(t, err)
		require.Equal(t, string(hostRelease), runOK(t, ctx, nodes[0], "cat /etc/os-release"))
	})

	t.Run("PID 1 reaps orphans", func(t *testing.T) {
		n := nodes[0]
		// The background sleep is orphaned when sh exits and is
		// re-parented to the node's init, which must reap it.
		runOK(t, ctx, n, "sh -c 'sleep 0.2 & exit 0'")
		// Well after the sleep ended: its exit status must have been collected.
		out := runOK(t, ctx, n, "sleep 1; ps -eo stat=,args=")
		require.NotContains(t, out, "Z", "no zombies in the node:\n%s", out)
		require.Contains(t, runOK(t, ctx, n, "tr '\\0' ' ' </proc/1/cmdline"), initMarker, "commands run in the node's PID namespace")
	})
}

// hostProcsWithArg returns host PIDs of live processes whose argv contains arg.
func hostProcsWithArg(arg string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg && !exited(pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func TestDeleteKillsProcesses(t *testing.T) {
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, time.Minute)
	n, err := p.Create(ctx, provider.NodeSpec{ID: "victim"})
	require.NoError(t, err)
	keep, err := p.Create(ctx, provider.NodeSpec{ID: "bystander"})
	require.NoError(t, err)

	marker := fmt.Sprintf("%d.%d", 9000+os.Getpid()%1000, time.Now().UnixNano()%1e6)
	// A daemon detached from the command that started it.
	runOK(t, ctx, n, "setsid sleep "+marker+" </dev/null >/dev/null 2>&1 &")
	runOK(t, ctx, keep, "setsid sleep "+marker+"1 </dev/null >/dev/null 2>&1 &")
	require.Eventually(t, func() bool { return len(hostProcsWithArg(marker)) == 1 }, 5*time.Second, 50*time.Millisecond)

	require.NoError(t, p.Delete(ctx, n.ID))
	require.Empty(t, hostProcsWithArg(marker), "Delete ended the node's processes")
	require.Len(t, hostProcsWithArg(marker+"1"), 1, "other nodes are untouched")
	_, err = n.Transport.Run(ctx, provider.Command{Args: []string{"true"}})
	require.Error(t, err, "the deleted node's transport refuses to run")
	require.NoError(t, p.Delete(ctx, n.ID), "Delete is idempotent")

	// The address is free again and is reused by the next node.
	again, err := p.Create(ctx, provider.NodeSpec{ID: "next"})
	require.NoError(t, err)
	require.Equal(t, n.InterfaceAddr, again.InterfaceAddr)
}

// leftovers lists what of a lab's host resources still exist.
type footprint struct {
	bridge  string
	veths   []string
	pids    []int
	netns   []uint64 // inode numbers of the nodes' network namespaces
	dir     string
	subnet  netip.Prefix
	forward []string
	// taken is when the footprint was recorded, in clock ticks since boot.
	// Network namespace inodes are recycled once a namespace dies, so a
	// process started later (in another lab, say) may show one of ours.
	taken uint64
}

// ticksSinceBoot is the current time in the unit of /proc/PID/stat's start
// time (USER_HZ, 100 per second on Linux).
func ticksSinceBoot(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/uptime")
	require.NoError(t, err)
	secs, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	require.NoError(t, err)
	return uint64(secs * 100)
}

func footprintOf(t *testing.T, l *Lab, nodes []*provider.Node) footprint {
	fp := footprint{bridge: l.Bridge(), dir: l.Dir(), subnet: l.Subnet(), forward: l.forwardRule("-C"), taken: ticksSinceBoot(t) + 1}
	for _, n := range nodes {
		var info *NodeInfo
		require.True(t, n.As(&info))
		fp.veths = append(fp.veths, info.HostVeth)
		fp.pids = append(fp.pids, info.PID)
		var st unix.Stat_t
		require.NoError(t, unix.Stat(info.NetNS, &st))
		fp.netns = append(fp.netns, st.Ino)
	}
	return fp
}

// requireGone checks that nothing of the lab is left on the host.
func (fp footprint) requireGone(t *testing.T) {
	t.Helper()
	require.False(t, linkExists(fp.bridge), "bridge %s removed", fp.bridge)
	for _, v := range fp.veths {
		require.False(t, linkExists(v), "veth %s removed", v)
	}
	for _, pid := range fp.pids {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		require.ErrorIs(t, err, os.ErrNotExist, "node init %d gone (and reaped)", pid)
	}
	// No process anywhere is still in a node's network namespace.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var st unix.Stat_t
		pid, err := strconv.Atoi(e.Name())
		if err != nil || unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if started, err := procStartTime(pid); err != nil || started > fp.taken {
			continue // gone, or too young to have been in our namespaces
		}
		require.NotContains(t, fp.netns, st.Ino, "process %s still in a lab network namespace", e.Name())
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), fp.dir, "no mount of the lab left on the host")
	netns, _ := output(context.Background(), "ip", "netns", "list")
	require.NotContains(t, string(netns), "mason")
	require.Error(t, run(context.Background(), nil, "iptables", fp.forward...), "FORWARD rule removed")
	routes, err := output(context.Background(), "ip", "-4", "route", "show", "table", "all")
	require.NoError(t, err)
	require.NotContains(t, string(routes), fp.subnet.Masked().Addr().String(), "no route to the lab subnet left")
	_, err = os.Stat(fp.dir)
	require.ErrorIs(t, err, os.ErrNotExist, "lab directory removed")
}

func TestTeardownLeavesNothing(t *testing.T) {
	needLab(t)
	ctx := ctxT(t, 2*time.Minute)
	// The default directory (under /var/lib, which nodes mount over)
	// must work as well as a temporary one.
	name := uniqueName("td")
	l, err := Open(ctx, Options{Name: name})
	require.NoError(t, err)
	torn := false
	t.Cleanup(func() {
		if !torn {
			_ = l.Teardown(context.Background())
		}
	})
	require.Equal(t, filepath.Join(DefaultRoot, name), l.Dir())
	p := l.Provider()
	var nodes []*provider.Node
	for i := range 3 {
		n, err := p.Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("n%d", i)})
		require.NoError(t, err)
		nodes = append(nodes, n)
		runOK(t, ctx, n, "setsid sleep 4321 </dev/null >/dev/null 2>&1 & echo data > /var/lib/x")
	}
	fp := footprintOf(t, l, nodes)
	require.True(t, linkExists(fp.bridge))
	require.NoError(t, run(ctx, nil, "iptables", fp.forward...), "FORWARD rule present while the lab runs")

	require.NoError(t, l.Teardown(ctx))
	torn = true
	fp.requireGone(t)
}

func TestCheckNamesMissingTools(t *testing.T) {
	needLab(t)
	t.Setenv("PATH", t.TempDir())
	err := Check()
	require.Error(t, err)
	for _, tool := range []string{"ip", "nsenter", "iptables"} {
		require.Contains(t, err.Error(), tool)
	}
	_, err = Open(context.Background(), Options{Name: "x", Dir: t.TempDir()})
	require.ErrorContains(t, err, "install Debian packages")
}

func TestOpenRejectsBadOptions(t *testing.T) {
	needLab(t)
	ctx := ctxT(t, time.Minute)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"bad name", Options{Name: "Bad Name"}, "invalid"},
		{"ipv6 subnet", Options{Name: "x", Subnet: netip.MustParsePrefix("fd00::/64")}, "IPv4"},
		{"subnet routed on the host", Options{Name: "x", Subnet: netip.MustParsePrefix("127.0.0.0/24")}, "overlaps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dir = t.TempDir()
			_, err := Open(ctx, tc.opts)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestAddressesPersistAcrossControllers(t *testing.T) {
	first := openLab(t, Options{})
	ctx := ctxT(t, time.Minute)
	a, err := first.Provider().Create(ctx, provider.NodeSpec{ID: "a"})
	require.NoError(t, err)

	// A second controller (a fresh Open of the same lab) sees the node and
	// never hands out its address again.
	second, err := Open(ctx, Options{Name: first.LabName(), Dir: first.Dir()})
	require.NoError(t, err)
	require.Equal(t, first.Subnet(), second.Subnet())
	got, err := second.Provider().Get(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, a.InterfaceAddr, got.InterfaceAddr)
	require.Equal(t, "a\n", runOK(t, ctx, got, "hostname"))
	b, err := second.Provider().Create(ctx, provider.NodeSpec{ID: "b"})
	require.NoError(t, err)
	require.NotEqual(t, a.InterfaceAddr, b.InterfaceAddr)
	again, err := second.Provider().Create(ctx, provider.NodeSpec{ID: "a"})
	require.NoError(t, err)
	require.Equal(t, a.InterfaceAddr, again.InterfaceAddr, "Create of an existing ID returns it")

	// The portable handle leads back to the driver.
	var drv *Lab
	require.True(t, second.Provider().As(&drv))
	require.Same(t, second, drv)

	// A subnet change on reopen is refused rather than silently ignored.
	_, err = Open(ctx, Options{Name: first.LabName(), Dir: first.Dir(), Subnet: netip.MustParsePrefix("10.251.3.0/24")})
	require.ErrorContains(t, err, "already uses subnet")
}

func TestRecreateAfterNodeDied(t *testing.T) {
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, time.Minute)
	n, err := p.Create(ctx, provider.NodeSpec{ID: "fragile"})
	require.NoError(t, err)
	var info *NodeInfo
	require.True(t, n.As(&info))
	require.NoError(t, unix.Kill(info.PID, unix.SIGKILL))
	require.Eventually(t, func() bool { reap(info.PID); return exited(info.PID) }, 5*time.Second, 20*time.Millisecond)

	got, err := p.Get(ctx, "fragile")
	require.NoError(t, err)
	require.Equal(t, provider.StateFailed, got.State, "a node whose init died is reported failed")
	require.Error(t, provider.Ready(ctx, got))

	again, err := p.Create(ctx, provider.NodeSpec{ID: "fragile"})
	require.NoError(t, err)
	require.Equal(t, provider.StateRunning, again.State)
	require.Equal(t, n.InterfaceAddr, again.InterfaceAddr, "re-created with its reserved address")
	require.NoError(t, provider.Ready(ctx, again))
}

func TestForwardRuleLetsBridgeTrafficPastDrop(t *testing.T) {
	needLab(t)
	if b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Skip("bridged traffic bypasses iptables on this host (br_netfilter off), so the FORWARD rule has nothing to do")
	}
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, time.Minute)
	a, err := p.Create(ctx, provider.NodeSpec{ID: "a"})
	require.NoError(t, err)
	b, err := p.Create(ctx, provider.NodeSpec{ID: "b"})
	require.NoError(t, err)
	ln := listenInNode(t, b, 7171)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "hello")
			c.Close()
		}
	}()
	reach := func() bool {
		cmd := provider.Command{Args: []string{"timeout", "2", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/7171; cat <&3", b.InterfaceAddr)}}
		res, err := a.Transport.Run(ctx, cmd)
		require.NoError(t, err)
		return res.ExitCode == 0 && string(res.Stdout) == "hello\n"
	}

	// What dockerd's DROP policy does, limited to this lab's bridge so
	// nothing else on the host is affected.
	drop := []string{"-w", "5", "-A", "FORWARD", "-i", l.Bridge(), "-o", l.Bridge(), "-j", "DROP"}
	require.NoError(t, run(ctx, nil, "iptables", drop...))
	t.Cleanup(func() {
		drop[2] = "-D"
		_ = run(context.Background(), nil, "iptables", drop...)
	})
	require.True(t, reach(), "the lab's ACCEPT rule comes first")

	require.NoError(t, run(ctx, nil, "iptables", l.forwardRule("-D")...))
	require.False(t, reach(), "without the lab's rule the traffic is dropped (the test is meaningful)")
	require.NoError(t, run(ctx, nil, "iptables", l.forwardRule("-I")...))
	require.True(t, reach())
}

func TestConcurrentCreates(t *testing.T) {
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, time.Minute)
	const distinct = 6
	var wg sync.WaitGroup
	nodes := make([]*provider.Node, 2*distinct)
	errs := make([]error, 2*distinct)
	for i := range 2 * distinct {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every ID is created twice at the same time.
			nodes[i], errs[i] = p.Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("c%d", i%distinct)})
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i, n := range nodes {
		require.NoError(t, errs[i])
		if id, ok := seen[n.InterfaceAddr]; ok {
			require.Equal(t, id, n.ID, "an address belongs to one node")
		}
		seen[n.InterfaceAddr] = n.ID
	}
	require.Len(t, seen, distinct)
	list, err := p.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, distinct)
	for _, n := range list {
		require.NoError(t, provider.Ready(ctx, n))
	}
}
