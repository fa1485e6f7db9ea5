// Package netsvc holds the contracts of the network services a deployment
// configures while it runs — DNS, IP address management (IPAM) and an L4 load
// balancer — and the value types they exchange.
//
// A role learns a node's address only after the node exists, and a load
// balancer's backends are the API servers that exist right now, so these
// services cannot be configured in advance: roles update them mid-workflow,
// through the narrow interfaces [DNS], [IPAM] and [LoadBalancer] that they
// find in their run context.
//
// Each contract has more than one implementation, and callers never know
// which one they hold:
//
//   - embedded: netsvc/authdns (an authoritative DNS server on miekg/dns),
//     netsvc/ipam (allocations made race-free by compare-and-swap on a
//     store.Store) and netsvc/lb (a TCP proxy with health checks), all
//     persisting through store, for tests and small setups;
//   - remote: netsvc/daemon runs the same three implementations in a
//     standalone process that outlives the controller (the provisioner exits
//     after apply, DNS and the load balancer keep serving), and the Client
//     of netsvc/daemon/client, speaking JSON over mutually authenticated
//     TLS, implements the same interfaces — so a role calls DNS.Upsert the
//     same way in both cases.
//
// Swapping in an external service later means writing one more type that
// satisfies the interface: DNS maps onto RFC 2136 dynamic updates (Upsert is
// a delete of the RRset followed by adds in one UPDATE message, Delete a
// delete of the RRset; record values are already in zone-file text form), a
// HAProxy adapter maps SetBackends/AddBackend/RemoveBackend onto its runtime
// API ("set server ... state drain" for removal) and Status onto "show
// servers state", and an external IPAM maps Allocate onto its "next free
// address" call with the owner as the idempotency key. The contracts are kept
// deliberately small so such adapters stay small too.
//
// [AssignName] shows how the contracts compose: it allocates an address for
// an owner and publishes both the forward record and the reverse (PTR)
// record, whichever implementations it is handed.
package netsvc
