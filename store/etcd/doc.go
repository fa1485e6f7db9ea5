// Package etcdstore is the distributed store backend: mason's [store.Store]
// kept in an etcd cluster, so several controllers (several processes, on
// several machines) can share one deployment's state.
//
// The contract maps onto etcd almost one to one:
//
//   - Revisions are etcd revisions. An entry's revision is its etcd
//     ModRevision; CompareAndSwap with revision 0 compares the key's
//     CreateRevision with 0 (the key does not exist), any other revision
//     compares ModRevision.
//   - [Store.Txn] is one etcd transaction: every conditional op becomes an
//     If comparison, every write a Then op, and the Else branch reads the
//     checked keys back so a failure reports, in a [store.ConflictError],
//     the first condition that failed and the revision actually found.
//   - [Store.Watch] is an etcd watch that starts at an explicit revision, so
//     a replay from a listing's revision has no gap; if the watch is cut
//     (a member died, the member lost its leader) it resumes from the
//     revision after the last event delivered. A start revision older than
//     the cluster's compaction point fails with [store.ErrCompacted].
//   - Leases are etcd leases. KeepAlive is one KeepAliveOnce round trip;
//     there is no background keep-alive goroutine, the caller (a
//     [store.Keeper], as [store.Lock] and claim sessions use) decides when
//     to renew. etcd counts TTLs in whole seconds
//     and enforces a minimum of about 1.5 election timeouts, so a lease may
//     live somewhat longer than asked, never shorter.
//
// Several deployments (or several applications) can share one etcd cluster:
// [Options.Prefix] puts every key of a Store under a namespace, and the
// Store never reads, lists or watches outside it. The prefix, Put,
// CompareAndSwap, Delete and the checks of a Txn's ops are the portable
// [store.Portable]'s; this package is the driver beneath it.
//
// Differences from the embedded bolt backend that callers may notice:
// revisions are cluster-wide, so they grow with writes in other namespaces
// too and are not gap-free within one namespace (they are still strictly
// increasing, which is all the contract's CAS and watch guarantees need);
// and the history Watch can replay is what the cluster has not compacted,
// which the etcd operator controls (--auto-compaction-*).
//
// etcd's own limits apply: a transaction holds at most --max-txn-ops
// operations (128 by default) and a request at most --max-request-bytes
// (1.5 MiB by default); bigger ones fail with etcd's error.
// [Store] implements [store.TxnLimiter]: [Store.MaxTxnOps] and
// [Store.MaxTxnBytes] report them ([Options.MaxTxnOps] and
// [Options.MaxRequestBytes] when the cluster runs with other values), and
// graph's journal splits its group commits to fit both. A write that
// fails with a timeout while the cluster changes leader is ambiguous: it may
// or may not have been applied, so re-read before retrying a conditional
// write. Pass contexts with deadlines: etcd itself gives up on a proposal
// lost with a dead leader only after its request timeout (5s plus two
// election timeouts).
//
// Transport security: pass a [crypto/tls.Config] in [Options.TLS] with the
// cluster's CA in RootCAs and this client's certificate, as mason's pki
// issues them ([pki.Authority.ClientConfig] returns one).
//
// [pki.Authority.ClientConfig]: https://pkg.go.dev/github.com/masonops/mason/pki#Authority.ClientConfig
package etcdstore
