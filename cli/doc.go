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
// Around the plan the commands do what package deploy does for every
// program: they check the input and the state before anything is made
// (plan, status, why and graph create no state file), refuse a state that
// lost the deployment while its nodes still run, load the key-encryption
// key ($MASON_KEK, or -key-file, by default the state file's path plus
// .kek) and check it against the state — the journal seals secret role
// outputs with it (graph.Deployment.UseKEK) —, create nodes under the state's
// lock, print the command that resumes a held node-role, and destroy
// everything the deployment made. App.Services registers services that
// live in the state or need the key, such as a pki.Manager.
//
// The package lives apart from the library's root so that a program using
// only the Go API (role, graph, a store) does not link the HCL loader, the
// etcd client or grpc.
package cli
