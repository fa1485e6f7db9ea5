// Package kube holds the roles that deploy Kubernetes "the hard way",
// automated: every step an operator would do by hand — binaries, one
// certificate authority per trust domain, kubeconfigs, the encryption
// config, etcd, the API servers behind a load balancer with a DNS name,
// controller-manager and scheduler, RBAC for the API server to reach the
// kubelets, and on each worker containerd, CNI, routes, kubelet and
// kube-proxy — is a Go type in a file of its own, with the same file paths
// and flags the manual procedure uses, so an operator can read a role and
// recognise the step.
//
// Where the manual procedure cuts corners this package does not: etcd has
// three members over mutual TLS (the members and their peer URLs come from
// examples/etcd, linked through a typed aggregate), the API servers sit
// behind mason's load balancer (netsvc) with a DNS name that every
// kubeconfig points at, each node's pod subnet is allocated from mason's
// IPAM, and every certificate is issued by mason's pki for an identity known
// only once the node exists: a kubelet's certificate names only its node,
// each API server's serving certificate names only its own node besides the
// service names and the load balancer.
//
// Wiring is by type: the routes on every worker take role.All[PodSubnetOut],
// so adding a worker re-runs the routes everywhere and nothing else; the
// load balancer takes role.All[APIServerOut], so its backends are every API
// server.
//
// The binaries come from a pluggable Source: Download (release URL and
// pinned checksums) for real sites, GoBuild (compiled from the Go module
// proxy, cached by version and build inputs under /var/cache/mason) here.
package kube
