// Package mason is an embeddable library for composable ops: the SDK for
// building provisioners that bring up multi-node clusters — etcd, Docker
// Swarm, Kubernetes, anything — on a laptop lab, on machines reached over
// SSH, or on vSphere, with the same automation at every scale.
//
// # Roles
//
// A role is a Go type with a typed input struct and a typed output struct
// (package role). The input struct is the role's dependency list: each field
// is wired from an attribute (a default, the deployment, a node, an
// override), from the output of a role on the same node (role.Same), from
// the one output of its kind in the deployment (role.One), or from the
// outputs of every node (role.All) — cluster linking, such as every etcd
// member's peer URL. Wiring is typed and checked before anything runs.
//
// # Deployments, plans and the executor
//
// A deployment (package graph) binds roles to pools of nodes and sets
// attributes. mason expands it into a graph of node-roles, plans each one —
// run, and why ("input Peers changed: +n4"), or skip because it converged —
// and applies the plan with bounded parallelism, critical-path ordering,
// retries with backoff and circuit breakers. Every transition is journaled
// in a store (package store: bbolt by default, etcd for several
// controllers), so a crashed run resumes and a converged deployment re-runs
// nothing.
//
// # Services and providers
//
// Roles reach services through their context: a certificate authority per
// service with identity-bound certificates and mutual TLS (package pki), and
// DNS, IPAM and a load balancer (package netsvc). Providers (package
// provider) give roles one view of every machine: a node with addresses and
// a transport to run commands and copy files — lab namespaces on this
// machine (provider/lab), existing machines over SSH (provider/ssh), vSphere
// VMs (provider/vsphere).
//
// # A small example
//
//	type PeerURL struct{ URL string }
//
//	type MemberIn struct {
//		Peers role.All[PeerURL] // every member's PeerURL output
//		Token string            `attr:"etcd.cluster_token" default:"mason"`
//	}
//
//	peerURL := role.Func(role.Meta{Name: "peer-url"},
//		func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURL, error) {
//			return PeerURL{URL: "https://" + rc.Node().InterfaceAddr.String() + ":2380"}, nil
//		})
//	member := role.Func(role.Meta{Name: "etcd-member", Version: "3.4"},
//		func(ctx context.Context, rc *role.Context, in MemberIn) (struct{}, error) {
//			// write the config through rc, start the daemon, wait until healthy
//			return struct{}{}, nil
//		})
//
//	d := graph.NewDeployment("etcd")
//	d.Bind(d.Pool("members", nodes...), peerURL, member)
//	plan, err := graph.NewPlan(ctx, d, st) // every node-role: run or skip, and why
//	res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: 8})
//
// The package Example runs it. examples/etcd deploys a real three-member
// etcd cluster with mutual TLS on lab nodes this way.
//
// # Specs and the command line
//
// Deployments can also be written in HCL (package spec), and package cli
// gives a provisioner the command line plan, apply, graph, status, why and
// destroy with one call, cli.Main(cli.App{Registry: reg}). This package
// holds documentation only: importing it links nothing.
package mason
