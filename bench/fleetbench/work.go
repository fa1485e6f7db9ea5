package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
)

// The work both tools do, and the end state verify checks. The Ansible
// playbook in bench/fleet does the same; its template renders exactly
// what renderConfig does.
const (
	root       = "/var/lib/fleet"
	configPath = root + "/fleet.conf"
	blobPath   = root + "/blob.bin"
	reloadsLog = root + "/reloads.log"
	// reloadCmd is the command run only when the config changed: it
	// records the config's digest, so verify can count the runs.
	reloadCmd = `echo "reload $(sha256sum /var/lib/fleet/fleet.conf | cut -c1-16)" >> /var/lib/fleet/reloads.log`
)

// treeDir is one directory of the tree both tools ensure, with its mode.
type treeDir struct {
	Path string
	Mode fs.FileMode
}

var tree = []treeDir{
	{root, 0o755},
	{root + "/tree", 0o755},
	{root + "/tree/app", 0o750},
	{root + "/tree/app/data", 0o700},
	{root + "/tree/app/cache", 0o770},
	{root + "/tree/logs", 0o775},
	{root + "/tree/run", 0o711},
}

// nodeFacts are the facts the config is rendered from: what Ansible's
// setup module calls ansible_hostname, ansible_processor_nproc,
// ansible_memtotal_mb, ansible_kernel and ansible_eth0.ipv4.address.
type nodeFacts struct {
	Name     string
	Hostname string
	CPUs     int
	MemMiB   int
	Kernel   string
	Addr     string
}

// renderConfig is the config of one node: its own facts, the fleet
// version and every peer's address in node-name order.
func renderConfig(self nodeFacts, peers []string, version string) string {
	var b strings.Builder
	b.WriteString("# managed by bench/fleet\n")
	fmt.Fprintf(&b, "version = %s\n", version)
	fmt.Fprintf(&b, "hostname = %s\n", self.Hostname)
	fmt.Fprintf(&b, "cpus = %d\n", self.CPUs)
	fmt.Fprintf(&b, "memory_mib = %d\n", self.MemMiB)
	fmt.Fprintf(&b, "kernel = %s\n", self.Kernel)
	fmt.Fprintf(&b, "address = %s\n", self.Addr)
	fmt.Fprintf(&b, "peers = %s\n", strings.Join(peers, ","))
	return b.String()
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
