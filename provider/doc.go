// Package provider gives roles one normalized view of very different machines.
//
// A [Node] is a machine from some provider — a lab namespace on this host, a
// server reached over SSH, a vSphere VM — described the same way: a stable ID,
// a name, private and public addresses, the interface address used to reach
// it, a login, labels and facts. Every node carries a [Transport] that runs
// commands on it and copies files to and from it.
//
// A [Provider] creates, lists, gets and deletes nodes. Drivers live in
// subpackages (lab, ssh, vsphere). This package imports nothing from the rest
// of mason: roles and the graph depend on it, never the other way round.
package provider
