// Package authdns is mason's embedded authoritative DNS server, built on
// miekg/dns. It implements netsvc.DNS.
//
// The server answers only for the zones it is given (AddZone); every other
// question is REFUSED, and it never recurses (the RA bit is never set), so it
// cannot be used as an open resolver. Inside a zone it serves A, AAAA,
// CNAME (chased inside the zone), SRV, TXT and PTR record sets plus the
// zone's SOA and NS, over UDP and TCP, and tells a name that does not exist
// (NXDOMAIN) from a name that exists without the asked type (NODATA: NOERROR
// with the SOA in the authority section), including empty non-terminals.
// Wildcards, DNSSEC, zone transfers and delegations are not supported.
//
// Optionally (Options.Forward) questions outside the zones are relayed to
// upstream resolvers the user names — only for clients that ask for
// recursion and are listed in Options.ForwardClients (loopback by default).
//
// On a specific address UDP is served by one SO_REUSEPORT socket per CPU,
// each read by goroutines that answer in place; on a wildcard address
// dns.Server serves it, so that replies leave from the address each query
// came to. TCP is always dns.Server.
//
// Records live in a store.Store. Each change is one store transaction that
// also bumps the zone's SOA serial under compare-and-swap, so concurrent
// writers — goroutines, or controllers sharing an etcd — never lose an
// update, and the serial grows with every change. The server answers from an
// immutable in-memory snapshot that is rebuilt when Upsert or Delete returns
// (so a record is served immediately after an upsert) and when the store
// reports a change made by another writer (a watch).
package authdns
