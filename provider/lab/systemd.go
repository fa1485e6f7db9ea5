package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
)

// Images a lab node can be made from ([provider.NodeSpec.Image] ID).
const (
	// ImageHost is the default: the host's root file system with the
	// node's own /etc (copy on write), /var/lib, /var/log, /tmp and /run,
	// and a small shell as init. Units run under the lab's supervisor.
	ImageHost = "host"
	// ImageSystemd is the same file system booted with the host's systemd
	// as the node's init (PID 1), as in a systemd container: units are real
	// systemd units, logged by the node's journald. It needs the host's
	// systemd binary (Debian package systemd) and a cgroup2 hierarchy on
	// the host. The host's enabled units are not started in the node: its
	// /etc/systemd/system starts empty.
	ImageSystemd = "systemd"
)

// systemdBinary is where Debian installs systemd.
const systemdBinary = "/lib/systemd/systemd"

// sigPoweroff asks systemd as PID 1 to power off (SIGRTMIN+4 as glibc,
// and so systemd, numbers it); SIGTERM only makes it re-execute itself.
const sigPoweroff = syscall.Signal(38)

// systemdInitScript is the init of ImageSystemd nodes: the same private
// file systems as initScript, then a minimal /dev, a read-only /sys (so
// the node's systemd leaves the host's devices alone) and its own cgroup
// namespace and cgroup2 mount, then systemd itself as PID 1.
const systemdInitScript = "set -eu\necho 0 >\"$MASON_CGROUP/cgroup.procs\"\n" + nodeSetup + `mount -t tmpfs -o mode=0755,nosuid dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
cd /
echo ok >&3
exec 3>&-
exec unshare --cgroup /bin/sh -c 'mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup && exec env -i container=mason-lab PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ` + systemdBinary + `'
`

// systemdMasked are units of the host's systemd that must not run in a
// node: they would act on the host's shared file systems.
var systemdMasked = []string{
	"systemd-tmpfiles-clean.timer", // cleans the host's /var/tmp
	"systemd-remount-fs.service",   // remounts the (host's) root
	"systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
	"systemd-timesyncd.service", // sets the host's clock
}

// prepareSystemdEtc fills the node's /etc overlay so that systemd boots
// only what a container should: an opaque /etc/systemd/system (the host's
// enabled units stay hidden) with multi-user.target as the default and
// the masks above, no fstab, and an empty machine-id (systemd makes one).
func prepareSystemdEtc(nodeDir string) error {
	upper := filepath.Join(nodeDir, "etc-upper")
	sys := filepath.Join(upper, "systemd", "system")
	if err := os.MkdirAll(sys, 0o755); err != nil {
		return err
	}
	if err := unix.Setxattr(sys, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("hide the host's units from the node (the lab directory's file system must support trusted xattrs): %w", err)
	}
	links := map[string]string{"default.target": "/lib/systemd/system/multi-user.target"}
	for _, u := range systemdMasked {
		links[u] = "/dev/null"
	}
	for name, target := range links {
		p := filepath.Join(sys, name)
		if err := os.Symlink(target, p); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	for name, content := range map[string]string{"machine-id": "", "fstab": "# lab node: nothing to mount\n"} {
		if err := os.WriteFile(filepath.Join(upper, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cgroup2Root returns where the host mounts its cgroup2 hierarchy.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && fields[3] == "/" {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 hierarchy is mounted on this host: systemd lab nodes need one (mount -t cgroup2 none /sys/fs/cgroup/unified)")
}

// labCgroup is the cgroup (in the host's cgroup2 hierarchy) under which
// the lab's systemd nodes run, one child per node.
func (l *Lab) labCgroup() (string, error) {
	root, err := cgroup2Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "mason-lab", "lab-"+shortHash(l.dir)), nil
}

func (l *Lab) nodeCgroup(id string) (string, error) {
	lc, err := l.labCgroup()
	if err != nil {
		return "", err
	}
	return filepath.Join(lc, id), nil
}

// killCgroup ends every process in the cgroup cg and its children, then
// removes them all. A missing cgroup is fine.
func killCgroup(ctx context.Context, cg string) error {
	if _, err := os.Stat(cg); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// cgroup.kill (Linux 5.14) sends SIGKILL to the whole subtree.
	if err := os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", cg, err)
	}
	var dirs []string
	_ = filepath.WalkDir(cg, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for i := len(dirs) - 1; i >= 0; i-- {
		for {
			err := unix.Rmdir(dirs[i])
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			// EBUSY until the killed processes are reaped.
			if time.Now().After(deadline) {
				return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("remove cgroup %s: %w", dirs[i], ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// removeLabCgroup removes the (empty by now) cgroups of the lab.
func (l *Lab) removeLabCgroup(ctx context.Context) error {
	lc, err := l.labCgroup()
	if err != nil {
		return nil // no cgroup2, so no systemd nodes
	}
	if err := killCgroup(ctx, lc); err != nil {
		return err
	}
	_ = unix.Rmdir(filepath.Dir(lc)) // mason-lab, if no other lab uses it
	return nil
}

// waitBooted waits until the node's systemd has finished booting.
func waitBooted(ctx context.Context, t *Transport) error {
	cmd := provider.Command{Args: []string{"systemctl", "is-system-running", "--wait"}, Timeout: 2 * time.Minute}
	var last string
	for {
		res, err := t.Run(ctx, cmd)
		if err != nil {
			return fmt.Errorf("waiting for the node's systemd to boot: %w", err)
		}
		state := strings.TrimSpace(string(res.Stdout))
		switch state {
		case "running":
			return nil
		case "degraded":
			failed, _ := t.Run(ctx, provider.Command{Args: []string{"systemctl", "--failed", "--no-legend", "--plain"}, Timeout: time.Minute})
			return fmt.Errorf("the node's systemd booted degraded; failed units:\n%s", strings.TrimSpace(string(failed.Stdout)))
		}
		// "offline" or an empty answer: its manager is not answering yet.
		last = state + strings.TrimSpace(string(res.Stderr))
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the node's systemd to boot (last said %q): %w", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
