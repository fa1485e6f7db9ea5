// Package etcd holds the roles that deploy an etcd cluster with mutual TLS
// everywhere: the smallest deployment that shows what mason is for.
//
//   - Cluster linking: every member's initial cluster is the aggregate of
//     every peer's URL (role.All[PeerURLOut]).
//   - Identity-bound certificates: each member's peer certificate, from the
//     deployment's "etcd" authority, names only that member's own name and
//     addresses; the operator and the controller have client certificates of
//     their own; members refuse clients without one.
//   - Automatic iteration: adding members changes every member's peer list,
//     so the plan re-runs exactly those, and the new members join the running
//     cluster with a member-add and initial-cluster-state=existing, because
//     the Bootstrap role (Meta.Once) recorded who founded the cluster and is
//     never re-run.
//
// The roles are ordinary Go types; [Deployment] binds them to a pool of
// nodes. Members run Debian's etcd-server binary (/usr/bin/etcd) on each
// node, started through the node's Transport.
package etcd

import (
	"github.com/masonops/mason/attr"
)

// Service is the name of the certificate authority the roles use.
const Service = "etcd"

// Attribute keys the roles read.
var (
	ClusterToken = attr.New[string]("etcd.cluster_token").
			WithDoc("initial-cluster-token: keeps separate etcd clusters from joining each other").
			WithDefault("mason-etcd")
	Domain = attr.New[string]("etcd.domain").
		WithDoc("DNS domain of member names in certificates (n1.<domain>)").
		WithDefault("etcd.mason.lab")
	OperatorDir = attr.New[string]("etcd.operator_dir").
			WithDoc("directory on the controller where the operator's client certificate is written").
			WithDefault("/var/lib/mason/etcd-example/operator")
	Binary = attr.New[string]("etcd.binary").
		WithDoc("path of the etcd server binary on the nodes").
		WithDefault("/usr/bin/etcd")
)

// Paths on every member node.
const (
	ConfigFile = "/etc/etcd/etcd.yml"
	PKIDir     = "/etc/etcd/pki"
	DataDir    = "/var/lib/etcd/data"
	PIDFile    = "/run/etcd.pid"
	PeerPort   = 2380
	ClientPort = 2379
)
