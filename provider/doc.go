// Package provider gives roles one normalized view of very different machines.
//
// A [Node] is a machine from some provider — a lab namespace on this host, a
// server reached over SSH, a vSphere VM — described the same way: a stable ID
// chosen before creation, a name, a lifecycle [State], private and public
// addresses and the one interface address used to reach it (chosen by
// [PickInterfaceAddr] unless the driver documents a better rule), MACs, a
// [Login] (user plus fallbacks to probe), a [Flavor], an [Image], labels and
// facts. Every node carries a [Transport] that runs commands on it (stdin,
// environment, working directory, timeout; stdout, stderr and exit code
// captured) and copies files to and from it. What only one driver knows
// stays reachable through [Node.As], the escape hatch in the style of the
// Go CDK.
//
// The same Go CDK pattern shapes providers: users hold the portable
// [*Provider]; driver authors implement the narrow [Driver] interface
// (create, get, list, delete, all idempotent), and the Provider adds spec
// validation, consistent errors and [Provider.WaitReady]. A node is ready
// ([Ready]) when it is running, has its interface address, and its
// transport answers.
//
// # Optional capabilities
//
// A transport may offer more than commands and files, the way a
// database/sql/driver connection may implement driver.Pinger: [Units] runs
// long-running programs, discovered with [UnitsOf] (or [CapabilityOf] for
// any capability), and a transport without it is a [*CapabilityError]
// naming the node, before anything is installed.
//
// # How a role starts a daemon
//
// Every role that ends by starting a long-running program (etcd, dockerd,
// containerd, a kubelet) does it the same way:
//
//  1. describe the program as a [Unit] built only from the role's input:
//     absolute program path, arguments, environment, working directory,
//     restart policy, the units it requires;
//  2. install it with [Units.InstallUnit]: a new unit starts, a changed one
//     restarts exactly once, an unchanged running one is left alone, and a
//     stopped or crashed one starts again — so re-running the role is safe;
//  3. wait until the daemon serves (dial its port), and on failure include
//     [Units.UnitLogs] in the error;
//  4. implement the role's Check with [Units.UnitStatus], so the next plan
//     reports "etcd is not running on n2" and re-runs the role.
//
// Never start daemons with `setsid ... &` through Exec: nothing would
// supervise, restart, stop or log them. On ssh and vSphere machines a unit
// is a systemd unit file under /etc/systemd/system (see [Unit.SystemdFile])
// started with systemctl and logged by journald; in lab nodes the lab's
// supervisor runs the same definition. The role does not know which.
//
// Drivers live in subpackages: lab (nodes as Linux namespaces on this
// machine), ssh (existing machines), vsphere. Every driver passes the
// contract suite in providertest. This package imports nothing from the
// rest of mason: roles and the graph depend on it, never the other way
// round.
package provider
