package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// nsKinds are the namespaces a node owns, as named under /proc/PID/ns.
var nsKinds = []string{"net", "mnt", "uts", "ipc", "pid", "cgroup"}

// nsInodes returns the inode of each namespace of pid that differs from
// this process's own (the node's namespaces, for a node's init).
func nsInodes(pid int) map[string]uint64 {
	out := map[string]uint64{}
	for _, k := range nsKinds {
		var mine, theirs unix.Stat_t
		if unix.Stat("/proc/self/ns/"+k, &mine) != nil || unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, k), &theirs) != nil {
			continue
		}
		if mine.Ino != theirs.Ino {
			out[k] = theirs.Ino
		}
	}
	return out
}

// proc is a process, identified across PID reuse by its start time.
type proc struct {
	pid   int
	start uint64
}

// procsIn lists the processes (other than this one) in any namespace of
// inodes. A namespace inode is unambiguous only while the namespace lives
// (the kernel reuses the numbers), so a process found only by its network
// namespace must also hold addr as a local address there: that address is
// the node's own for as long as its record exists.
func procsIn(inodes map[string]uint64, netOnly uint64, addr netip.Addr) []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		match := false
		for k, ino := range inodes {
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/"+k, &st) == nil && st.Ino == ino {
				match = true
				break
			}
		}
		if !match && netOnly != 0 {
			var st unix.Stat_t
			match = unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == netOnly && hasLocalAddr(pid, addr)
		}
		if !match || exited(pid) {
			continue
		}
		if start, err := procStartTime(pid); err == nil {
			out = append(out, proc{pid, start})
		}
	}
	return out
}

// hasLocalAddr reports whether addr is a local address of pid's network
// namespace (from its /proc/PID/net/fib_trie).
func hasLocalAddr(pid int, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/fib_trie", pid))
	if err != nil {
		return false
	}
	want := addr.String()
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		f := strings.Fields(strings.TrimLeft(string(line), " |-+"))
		if len(f) == 1 && f[0] == want && i+1 < len(lines) && strings.Contains(string(lines[i+1]), "host LOCAL") {
			return true
		}
	}
	return false
}

// killProcs sends SIGTERM to ps, then SIGKILL to those still there after
// grace, and waits (ten seconds at most) until all are gone.
func killProcs(ctx context.Context, ps []proc, grace time.Duration) error {
	same := func(p proc) bool {
		st, err := procStartTime(p.pid)
		return err == nil && st == p.start && !exited(p.pid)
	}
	for _, p := range ps {
		if same(p) {
			_ = unix.Kill(p.pid, unix.SIGTERM)
		}
	}
	deadline := time.Now().Add(grace)
	killed := false
	for {
		left := 0
		for _, p := range ps {
			if same(p) {
				left++
				if killed {
					_ = unix.Kill(p.pid, unix.SIGKILL)
				}
				reap(p.pid)
			}
		}
		if left == 0 {
			return nil
		}
		if !killed && time.Now().After(deadline) {
			killed, deadline = true, time.Now().Add(10*time.Second)
			continue
		}
		if killed && time.Now().After(deadline) {
			return fmt.Errorf("%d processes in the node's namespaces survive SIGKILL", left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
