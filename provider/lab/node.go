package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
)

// NodeInfo is the lab's own description of a node, reachable through
// [provider.Node.As]:
//
//	var info *lab.NodeInfo
//	if n.As(&info) { ... info.PID ... }
type NodeInfo struct {
	// PID is the host PID of the node's init (PID 1 in the node).
	PID int
	// NetNS is the path of the node's network namespace, for
	// `nsenter --net=PATH dockerd ...` (don't use `ip netns exec`: it
	// remounts /sys and hides the cgroup mounts).
	NetNS string
	// Dir is the node's private directory on the host (overlay upper
	// layer of /etc, /var/lib, /var/log, /tmp).
	Dir string
	// HostVeth is the host side of the node's veth pair, on Bridge.
	HostVeth string
	// Bridge is the lab's bridge.
	Bridge string
}

// initMarker is argv[0] of every node's init, followed by the lab
// directory and the node ID, so a lab finds its nodes' processes even when
// the state file lost them (a crash between start and save).
const initMarker = "mason-lab-init"

// initScript runs as PID 1 of the node's PID namespace. It gives the node
// its private file systems and hostname, reports readiness on fd 3, then
// reaps children until SIGTERM. Paths of the node's directory are relative
// to its working directory (the node's directory), which stays reachable
// after /var/lib or /tmp are mounted over it.
const initScript = "set -eu\n" + nodeSetup + `cd /
echo ok >&3
exec 3>&-
trap 'kill -TERM -1 2>/dev/null || true; exit 0' TERM INT
while :; do sleep 3600 & wait $! || true; done
`

// nodeSetup gives a node its private file systems and hostname; every
// kind of init starts with it.
const nodeSetup = `mount --make-rprivate /
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$PWD/etc-upper,workdir=$PWD/etc-work" /etc
mount -c --bind var-lib /var/lib
mount -c --bind var-log /var/log
mount -c --bind tmp /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/lock
hostname "$MASON_HOSTNAME"
echo "$MASON_HOSTNAME" >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$MASON_HOSTNAME" >/etc/hosts
ip link set lo up
`

// Create makes the node spec.ID: a PID, mount, UTS, IPC and network
// namespace with its own init, and a veth on the lab bridge with the next
// free address. An existing running node is returned as it is; a node left
// half-made by a crash is removed and made again with the same address.
func (l *Lab) Create(ctx context.Context, spec provider.NodeSpec) (*provider.Node, error) {
	image := spec.Image.ID
	switch image {
	case "", ImageHost:
		image = ImageHost
	case ImageSystemd:
		if _, err := os.Stat(systemdBinary); err != nil {
			return nil, fmt.Errorf("lab: image %q needs the host's systemd at %s (Debian package systemd): %w", ImageSystemd, systemdBinary, err)
		}
		if _, err := cgroup2Root(); err != nil {
			return nil, fmt.Errorf("lab: image %q: %w", ImageSystemd, err)
		}
	default:
		return nil, fmt.Errorf("lab: image %q is unknown: use %q (the default) or %q", spec.Image.ID, ImageHost, ImageSystemd)
	}
	// Both locks hold across processes and are taken before anything of
	// the node exists: another process creating the same node waits here,
	// then finds it made.
	release, err := l.useShared(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	unlock, err := l.lockNode(ctx, spec.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	var rec *nodeRecord
	var existing bool
	err = l.withState(true, func(st *labState) error {
		if r, ok := st.Nodes[spec.ID]; ok {
			if r.image() != image {
				return fmt.Errorf("node %s exists with image %q, not %q: delete it first", spec.ID, r.image(), image)
			}
			rec, existing = r, true
			return nil
		}
		addr, err := st.allocAddr()
		if err != nil {
			return err
		}
		rec = &nodeRecord{
			ID: spec.ID, Name: spec.Name, Addr: addr, MAC: nodeMAC(l.dir, spec.ID).String(),
			HostVeth: l.hostVeth(spec.ID), State: string(provider.StatePending), Labels: spec.Labels,
			Image: image,
		}
		st.Nodes[spec.ID] = rec
		return nil
	})
	if err != nil {
		return nil, err
	}
	if existing {
		if rec.State == string(provider.StateRunning) && l.alive(rec) {
			return l.stamp(rec, spec)
		}
		// Half-made or dead: clear its leftovers, keep the record (and
		// its address) and build it again.
		if err := l.cleanupNode(ctx, rec); err != nil {
			return nil, err
		}
		rec.Name, rec.Labels = spec.Name, spec.Labels
	}

	pid, start, err := l.start(ctx, rec)
	if err == nil {
		rec.PID, rec.StartTime = pid, start
		rec.NetNS = nsInodes(pid)["net"]
		err = l.plug(ctx, rec)
	}
	if err == nil && rec.systemd() {
		err = waitBooted(ctx, l.transport(rec))
	}
	if err != nil {
		cerr := l.cleanupNode(context.WithoutCancel(ctx), rec)
		_ = l.withState(true, func(st *labState) error {
			if cerr == nil {
				delete(st.Nodes, rec.ID)
			} else if r := st.Nodes[rec.ID]; r != nil {
				r.State = string(provider.StateFailed)
			}
			return nil
		})
		return nil, errors.Join(err, cerr)
	}
	rec.State = string(provider.StateRunning)
	if err := l.withState(true, func(st *labState) error {
		st.Nodes[rec.ID] = rec
		return nil
	}); err != nil {
		return nil, err
	}
	return l.node(rec), nil
}

// stamp returns an existing node, adding the deployment label of spec if
// the node was made without one (before nodes were stamped).
func (l *Lab) stamp(rec *nodeRecord, spec provider.NodeSpec) (*provider.Node, error) {
	d, ok := spec.Labels[provider.LabelDeployment]
	if !ok || rec.Labels[provider.LabelDeployment] != "" {
		return l.node(rec), nil
	}
	err := l.withState(true, func(st *labState) error {
		if r := st.Nodes[rec.ID]; r != nil {
			if r.Labels == nil {
				r.Labels = map[string]string{}
			}
			r.Labels[provider.LabelDeployment] = d
			rec = r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l.node(rec), nil
}

// start launches the node's init in new namespaces and waits until it has
// set up its file systems.
func (l *Lab) start(ctx context.Context, rec *nodeRecord) (int, uint64, error) {
	nd := l.nodeDir(rec.ID)
	for _, d := range []string{"etc-upper", "etc-work", "var-lib", "var-log", "tmp"} {
		if err := os.MkdirAll(filepath.Join(nd, d), 0o755); err != nil {
			return 0, 0, fmt.Errorf("create node directory: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(nd, "tmp"), 0o1777); err != nil {
		return 0, 0, fmt.Errorf("create node /tmp: %w", err)
	}
	script, env := initScript, append(nodeEnv(), "MASON_HOSTNAME="+rec.Name)
	if rec.systemd() {
		if err := prepareSystemdEtc(nd); err != nil {
			return 0, 0, fmt.Errorf("prepare the node's /etc for systemd: %w", err)
		}
		cg, err := l.nodeCgroup(rec.ID)
		if err != nil {
			return 0, 0, err
		}
		if err := os.MkdirAll(cg, 0o755); err != nil {
			return 0, 0, fmt.Errorf("create the node's cgroup: %w", err)
		}
		script, env = systemdInitScript, append(env, "MASON_CGROUP="+cg)
	}
	logf, err := os.OpenFile(filepath.Join(nd, "init.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("create node log: %w", err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, 0, err
	}
	defer pr.Close()

	sh, err := exec.LookPath("sh")
	if err != nil {
		pw.Close()
		return 0, 0, err
	}
	cmd := &exec.Cmd{
		Path:       sh,
		Args:       []string{"sh", "-c", script, initMarker, l.dir, rec.ID},
		Dir:        nd,
		Env:        env,
		Stdout:     logf,
		Stderr:     logf,
		ExtraFiles: []*os.File{pw},
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:     true,
			Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET,
		},
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("start node init: %w", err)
	}
	pid := cmd.Process.Pid
	// The init outlives this process; it is reaped by Delete (or by the
	// host's init once this process exits).
	_ = cmd.Process.Release()

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 16))
		got <- b
	}()
	select {
	case b := <-got:
		if strings.TrimSpace(string(b)) != "ok" {
			fate := initFate(pid)
			_ = stopInit(context.WithoutCancel(ctx), pid, unix.SIGKILL)
			log, _ := os.ReadFile(filepath.Join(nd, "init.log"))
			why := strings.TrimSpace(string(log))
			if why == "" {
				why = fmt.Sprintf("its init (pid %d) %s before it was ready, without a message (was it killed by another process?)", pid, fate)
			}
			return 0, 0, fmt.Errorf("node init failed to set up the node: %s", why)
		}
	case <-ctx.Done():
		pr.Close() // unblocks the reader
		<-got
		_ = stopInit(context.Background(), pid, unix.SIGKILL)
		return 0, 0, fmt.Errorf("waiting for node init: %w", ctx.Err())
	}
	start, err := procStartTime(pid)
	if err != nil {
		return 0, 0, fmt.Errorf("node init vanished: %w", err)
	}
	return pid, start, nil
}

// plug connects the node to the lab bridge: a veth pair whose node end is
// eth0 with the node's address and MAC. The node gets the subnet's
// connected route and nothing else: no default route, no NAT.
func (l *Lab) plug(ctx context.Context, rec *nodeRecord) error {
	pid := strconv.Itoa(rec.PID)
	if err := run(ctx, nil, "ip", "link", "add", rec.HostVeth, "type", "veth", "peer", "name", "eth0", "address", rec.MAC, "netns", pid); err != nil {
		return fmt.Errorf("create veth: %w", err)
	}
	if err := run(ctx, nil, "ip", "link", "set", rec.HostVeth, "master", l.bridge, "up"); err != nil {
		return fmt.Errorf("attach veth to bridge %s: %w", l.bridge, err)
	}
	batch := fmt.Sprintf("addr add %s dev eth0\nlink set eth0 up\n", netip.PrefixFrom(rec.Addr, l.subnet.Bits()))
	if err := run(ctx, []byte(batch), "nsenter", "-t", pid, "-n", "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("configure node network: %w", err)
	}
	return nil
}

// Get returns the node with the given ID.
func (l *Lab) Get(ctx context.Context, id string) (*provider.Node, error) {
	var rec *nodeRecord
	if err := l.withState(false, func(st *labState) error {
		rec = st.Nodes[id]
		return nil
	}); err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("lab %s: %w", l.name, provider.ErrNotFound)
	}
	return l.node(rec), nil
}

// List returns every node of the lab, sorted by ID, including nodes made
// by other processes.
func (l *Lab) List(ctx context.Context) ([]*provider.Node, error) {
	var out []*provider.Node
	err := l.withState(false, func(st *labState) error {
		for _, id := range st.sortedIDs() {
			out = append(out, l.node(st.Nodes[id]))
		}
		return nil
	})
	return out, err
}

// Delete stops the node's init and every other process in any of its
// namespaces (also those that joined only its network namespace, like a
// daemon started with nsenter --net), removes its veth and directory,
// then releases its address. Deleting a missing node succeeds.
func (l *Lab) Delete(ctx context.Context, id string) error {
	release, err := l.useShared(ctx)
	if err != nil {
		return err
	}
	defer release()
	return l.deleteNode(ctx, id)
}

// deleteNode is Delete without the lab's use lock (Teardown holds it).
func (l *Lab) deleteNode(ctx context.Context, id string) error {
	unlock, err := l.lockNode(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	var rec *nodeRecord
	err = l.withState(true, func(st *labState) error {
		rec = st.Nodes[id]
		if rec != nil {
			rec.State = string(provider.StateDeleting)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if rec == nil {
		// No record, but maybe leftovers (a state file that lost it): the
		// node's directory, veth and init marker are found by its ID.
		if _, err := os.Stat(l.nodeDir(id)); err != nil {
			return nil
		}
		rec = &nodeRecord{ID: id, HostVeth: l.hostVeth(id), Image: ImageHost}
		if cg, err := l.nodeCgroup(id); err == nil {
			if _, err := os.Stat(cg); err == nil {
				rec.Image = ImageSystemd
			}
		}
	}
	if err := l.cleanupNode(ctx, rec); err != nil {
		return err
	}
	return l.withState(true, func(st *labState) error {
		delete(st.Nodes, id)
		return nil
	})
}

func (l *Lab) hostVeth(id string) string { return "mv" + shortHash(l.dir+"\x00"+id) }

// cleanupNode removes everything a node may hold, whatever state it was
// left in.
func (l *Lab) cleanupNode(ctx context.Context, rec *nodeRecord) error {
	pids := findInits(l.dir, rec.ID)
	if rec.PID != 0 && l.alive(rec) {
		pids = append(pids, rec.PID)
	}
	// While an init lives its namespaces do, and their inodes name them
	// unambiguously: note every process in them before the init goes.
	inodes := map[string]uint64{}
	for _, pid := range pids {
		for k, ino := range nsInodes(pid) {
			inodes[k] = ino
		}
	}
	stragglers := procsIn(inodes, 0, netip.Addr{})
	sig := unix.SIGTERM
	if rec.systemd() {
		sig = sigPoweroff
	}
	for _, pid := range pids {
		if err := stopInit(ctx, pid, sig); err != nil {
			return err
		}
	}
	if rec.systemd() {
		// Whatever the node's systemd left (or all of it, when its PID is
		// lost) is in the node's cgroup.
		cg, err := l.nodeCgroup(rec.ID)
		if err == nil {
			err = killCgroup(ctx, cg)
		}
		if err != nil {
			return fmt.Errorf("node %s: %w", rec.ID, err)
		}
	}
	// Processes that joined only the node's network namespace (nsenter
	// --net) outlive its init and keep the namespace, its eth0 and its
	// address alive; those, and any that joined since, go now.
	stragglers = append(stragglers, procsIn(nil, rec.NetNS, rec.Addr)...)
	if err := killProcs(ctx, stragglers, 5*time.Second); err != nil {
		return fmt.Errorf("node %s: %w", rec.ID, err)
	}
	if linkExists(rec.HostVeth) {
		if err := run(ctx, nil, "ip", "link", "del", rec.HostVeth); err != nil && linkExists(rec.HostVeth) {
			return fmt.Errorf("remove veth of node %s: %w", rec.ID, err)
		}
	}
	if err := os.RemoveAll(l.nodeDir(rec.ID)); err != nil {
		return fmt.Errorf("remove directory of node %s: %w", rec.ID, err)
	}
	return nil
}

// node turns a record into the portable Node.
func (l *Lab) node(rec *nodeRecord) *provider.Node {
	state := provider.State(rec.State)
	if state == provider.StateRunning && !l.alive(rec) {
		state = provider.StateFailed
	}
	mac, _ := net.ParseMAC(rec.MAC)
	info := &NodeInfo{PID: rec.PID, NetNS: fmt.Sprintf("/proc/%d/ns/net", rec.PID), Dir: l.nodeDir(rec.ID), HostVeth: rec.HostVeth, Bridge: l.bridge}
	labels := make(map[string]string, len(rec.Labels))
	for k, v := range rec.Labels {
		labels[k] = v
	}
	n := &provider.Node{
		ID: rec.ID, Name: rec.Name, Provider: DriverName, Location: l.name, State: state,
		InterfaceAddr: rec.Addr, PrivateAddrs: []netip.Addr{rec.Addr}, MACs: []net.HardwareAddr{mac},
		Login:  provider.Login{User: "root"},
		Flavor: provider.Flavor{VCPUs: runtime.NumCPU()},
		Labels: labels,
		Facts:  map[string]string{"lab.pid": strconv.Itoa(rec.PID), "lab.netns": info.NetNS, "lab.bridge": l.bridge},
		Extra:  info,
	}
	if state == provider.StateRunning {
		n.Transport = l.transport(rec)
	}
	n.Image = provider.Image{ID: ImageHost, Name: "host root file system"}
	if rec.systemd() {
		n.Image = provider.Image{ID: ImageSystemd, Name: "host root file system booted with systemd"}
	}
	return n
}

func (l *Lab) transport(rec *nodeRecord) *Transport {
	return &Transport{pid: rec.PID, start: rec.StartTime, systemd: rec.systemd()}
}

func (r *nodeRecord) image() string {
	if r.Image == "" {
		return ImageHost
	}
	return r.Image
}

func (l *Lab) nodeDir(id string) string { return filepath.Join(l.dir, "nodes", id) }

// initFate says what became of a node init that did not report ready.
func initFate(pid int) string {
	f, err := procStat(pid)
	switch {
	case err != nil:
		return "was gone"
	case len(f) > 0 && f[0] == "Z":
		return "exited"
	}
	return "closed its readiness pipe"
}

// alive reports whether the record's init still runs (same PID and start
// time, not a zombie).
func (l *Lab) alive(rec *nodeRecord) bool {
	if rec.PID <= 0 {
		return false
	}
	st, err := procStartTime(rec.PID)
	return err == nil && st == rec.StartTime && !exited(rec.PID)
}

// nodeMAC is a stable, locally administered unicast MAC for a node.
func nodeMAC(labDir, id string) net.HardwareAddr {
	h := shortHash("mac\x00" + labDir + "\x00" + id)
	mac, _ := net.ParseMAC(fmt.Sprintf("02:%s:%s:%s:%s:%s", h[0:2], h[2:4], h[4:6], h[6:8], h[8:10]))
	return mac
}

func nodeEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "USER=root", "LOGNAME=root"}
}

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

func procStartTime(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil || len(f) < 20 {
		return 0, fmt.Errorf("process %d: no start time (%v)", pid, err)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// exited reports whether pid is gone or a zombie.
func exited(pid int) bool {
	f, err := procStat(pid)
	return err != nil || len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// findInits returns the PIDs of live node inits of the lab in labDir (of
// node id, or of every node when id is empty), found by their argv.
func findInits(labDir, id string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 6 && args[0] == "sh" && args[3] == initMarker && args[4] == labDir && (id == "" || args[5] == id) && !exited(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopInit sends sig (SIGTERM, or systemd's poweroff signal) to a node's
// init, escalates to SIGKILL after five seconds, and waits until it is
// gone (reaping it if it is our child).
func stopInit(ctx context.Context, pid int, sig unix.Signal) error {
	_ = unix.Kill(pid, sig)
	deadline := time.Now().Add(5 * time.Second)
	killed := false
	for {
		reap(pid)
		if exited(pid) {
			return nil
		}
		if !killed && time.Now().After(deadline) {
			_ = unix.Kill(pid, unix.SIGKILL)
			killed = true
		}
		select {
		case <-ctx.Done():
			_ = unix.Kill(pid, unix.SIGKILL)
			reap(pid)
			return fmt.Errorf("stop node init %d: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// reap collects pid's exit status if it is a child of this process (the
// controller that started the node, or a subreaper that adopted it). A
// zombie whose parent is elsewhere holds no namespaces; its parent reaps it.
func reap(pid int) {
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
}
