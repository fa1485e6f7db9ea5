// Package lab is the provider driver whose nodes are Linux namespaces on
// this machine: the same deployment that later runs on 200 machines runs
// on one laptop or CI box. It needs root and the tools ip (iproute2),
// nsenter and mount (util-linux) and iptables; [Check] says clearly what is
// missing.
//
// Each node is a process tree under its own small init (a POSIX shell loop
// that reaps children and exits on SIGTERM) in new PID, mount, UTS, IPC
// and network namespaces:
//
//   - network: a veth whose node end is eth0 with a stable MAC and the next
//     free address of the lab's subnet, its host end on a bridge the lab
//     owns. The host holds the subnet's first address on the bridge. Nodes
//     get the subnet's connected route only: no default route, no NAT; the
//     lab adds one FORWARD rule (-i BRIDGE -o BRIDGE -j ACCEPT) so bridged
//     traffic passes when dockerd has set the policy to DROP, and removes it
//     at teardown. Without Options.Subnet a free /24 in 10.200-250.x.0 is
//     picked after checking every route and address on the host, under a
//     host-wide lock, so labs can run side by side;
//   - mount: /etc is an overlay over the host's (copy on write), /var/lib,
//     /var/log and /tmp are the node's own directories, /run is a tmpfs, so
//     roles can write /etc/docker/daemon.json or start dockerd with default
//     paths on every node. /sys, /home, /usr and /root are the host's;
//   - UTS: the node's name is its hostname (and /etc/hostname).
//
// [Transport] enters all of a node's namespaces with nsenter; files go
// through the node's own shell. Run returns as soon as the command exits,
// even when it left a background process holding its output. Start
// long-running programs as units (below); a daemon that must run in the
// host's file system with only the node's network (as the Swarm facts in
// DESIGN.md require) is started with `nsenter --net=NodeInfo.NetNS`,
// never `ip netns exec`.
//
// Nodes offer [provider.Units]: long-running programs installed from a
// [provider.Unit] and supervised inside the node by the lab's supervisor
// (a small POSIX shell program kept in UnitDir), since lab nodes have no
// systemd. It honours the unit's restart policy, delay and start limit,
// runs the program in its own process group with only PATH and the unit's
// environment, appends its output to UnitLogDir/NAME.log, and keeps its
// status under /run/mason/units. The supervisor is a process of the node,
// so units keep running after the controller exits; deleting the node or
// tearing down the lab ends them with everything else in it. The unit's
// systemd file is also installed as /etc/systemd/system/NAME.service, so
// a lab node shows what a real machine would run.
//
// A node made with Image ID [ImageSystemd] boots the host's systemd as its
// PID 1 instead (in its own cgroup and cgroup namespace, with a minimal
// /dev and a read-only /sys, the host's enabled units hidden): its units
// are real systemd units, exactly as on an ssh or vSphere machine, which
// is how the units code is tested against a real systemd on one machine.
//
// Nodes outlive the controller: the lab keeps its subnet, its bridge name
// and every node (address, PID and start time, network namespace inode) in
// a JSON state file in its directory, changed under a file lock. A node's
// address stays reserved from before its resources exist until after they
// are gone, so a restarted controller never hands out an address in use.
// Creating or deleting a node holds a lock on that node that holds across
// processes (flock), taken before anything of it exists: two controllers
// creating the same nodes at once share them, and neither takes the
// other's half-made node for crash leftovers.
//
// Delete and [Lab.Teardown] end every process in any of a node's
// namespaces — found by namespace inode, so a daemon started with only
// `nsenter --net` goes too — and remove namespaces, veths, bridge,
// firewall rule and directories, also from a new process after a crash,
// when nodes are already gone or the state file is corrupt; node inits
// carry their lab directory and node ID in their argv, so even a node the
// state file lost is found. [Remove] does the same without opening (and
// so creating) the lab first: what a destroy command calls.
//
// The lab reports its capacity (provider.CapacityReporter: one node per
// free address of its subnet), so provider.Provider.CheckCapacity refuses
// a request that cannot fit before the first node is made.
//
// On hosts whose PID 1 does not reap orphans (some containers and
// microVMs), the init of a node whose controller died stays a zombie after
// Delete until its parent reaps it; a zombie holds no namespace, mount or
// interface.
package lab
