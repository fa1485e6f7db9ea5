// Package daemon runs mason's network services — authoritative DNS, IPAM
// and the L4 load balancer — in a process of their own, so they keep
// serving after the controller that configured them exits. The controller
// talks to it through package netsvc/daemon/client, whose Client
// implements netsvc.DNS, netsvc.IPAM and netsvc.LoadBalancer over the
// daemon's API and links none of this package (its server, bbolt, pki).
//
// The daemon is the embedded implementations (netsvc/authdns, netsvc/ipam,
// netsvc/lb) on one bbolt state file: every record, allocation, frontend
// and backend is written there before a call returns, so a daemon that is
// killed and started again on the same file serves the same zones (with the
// same SOA serials) and the same frontends (on the same ports, with the same
// backends).
//
// The API is JSON over HTTPS with mutual TLS, and nothing else: Serve
// refuses a tls.Config that does not require client certificates. The
// certificates come from mason's pki: issue the daemon a pki.Server
// certificate for its node's names and addresses and the controller a
// pki.Client certificate from the same service authority; ServerTLS builds
// the daemon's config from the installed files and pki's Bundle.ClientTLS
// the controller's from its bundle, or pass pki's
// Authority.ServerConfig/ClientConfig when the authority is at hand (they
// also follow root rotation and revocation).
//
// Start it with Main — from a program's own "serve" command, or from the
// small cmd/mason-netsvcd binary — or in-process with Serve.
package daemon
