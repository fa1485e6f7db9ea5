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
// Drivers live in subpackages: lab (nodes as Linux namespaces on this
// machine), ssh (existing machines), vsphere. Every driver passes the
// contract suite in providertest. This package imports nothing from the
// rest of mason: roles and the graph depend on it, never the other way
// round.
package provider
