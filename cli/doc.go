// Package cli is the command line of a provisioner built with mason: the
// commands plan, apply, graph, status, why and destroy, over deployment
// specs in HCL (package spec) and a state store named by -state (a bbolt
// file, or etcd for several controllers).
//
// A provisioner registers what its specs may name — roles, providers,
// services, attribute keys — and hands the command line over with one call:
//
//	func main() {
//		reg := spec.NewRegistry()
//		reg.Roles(role.Of(etcd.PeerURL{}), role.Of(etcd.Member{}))
//		cli.Main(cli.App{Registry: reg})
//	}
//
// Run is the same front end without the exit, for tests and for programs
// that embed it. Exit codes keep one meaning each: ExitOK, ExitFailure
// (something failed while doing the work) and ExitUsage (the command line
// or the spec is wrong, and nothing was changed).
//
// The package lives apart from the library's root so that a program using
// only the Go API (role, graph, a store) does not link the HCL loader, the
// etcd client or grpc.
package cli
