// Package client is the controller's side of netsvc/daemon: a [Client]
// of the daemon's mutual-TLS API that implements netsvc.DNS, netsvc.IPAM
// and netsvc.LoadBalancer, so roles use a daemon on a node exactly as they
// use the embedded services.
//
// It is a package of its own so that a controller links only the client:
// no daemon server, no bbolt, no pki, no DNS server library (a test checks
// its imports). The TLS config comes from the caller: pki's
// Bundle.ClientTLS for the controller's client certificate, or
// Authority.ClientConfig, which also follows root rotation.
//
// Errors the daemon answers with are [*RemoteError]s that match the same
// netsvc sentinels as the embedded services' (errors.Is(err,
// netsvc.ErrExhausted)); [IsRemote] tells them from failures to reach the
// daemon.
package client
