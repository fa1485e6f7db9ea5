// Package store is the one small key-value contract every mason package
// persists through: the graph's journal, the pki's keys and certificates, the
// netsvc records and address allocations.
//
// A [Store] maps string keys to byte values. Every successful write advances
// a single store-wide revision by one; each entry remembers the revision of
// its last write, which is what [Store.CompareAndSwap] and conditional
// [Op]s compare against. A [Store.Txn] applies several writes atomically under
// one revision.
//
// Guarantees every backend gives (and the storetest suite checks):
//
//   - Durability: when a write returns nil, it survives a crash of the
//     process (the bolt backend fsyncs every transaction; mem is only as
//     durable as the process).
//   - Linearizability of writes: a read that starts after a write returns
//     sees it; revisions are strictly increasing and follow the order of
//     the writes (and of watch events). They are gap-free only on the
//     embedded backends (mem, bolt): on etcd they are cluster-wide, so
//     writes in other namespaces, other clients and lease expiries advance
//     them too. Compare revisions for order and equality, never count them.
//   - Watch ordering: a watcher receives the events of its prefix in revision
//     order, each exactly once, with no gaps after the revision it asked for.
//   - Leases: keys written with a lease are deleted (and a delete event is
//     sent) when the lease expires or is revoked.
//
// Backends: store/mem (in memory, for tests), store/bolt (one bbolt file, the
// embedded default) and store/etcd (a shared etcd cluster, for several
// controllers). Each implements only a narrow [Driver] (Get, List, Txn,
// Watch, leases); the [*Portable] store over it, which every backend hands
// out, writes Put, CompareAndSwap, Delete, the checks of a transaction's
// ops and key prefixes ([WithPrefix]) once for all of them. Optional
// capabilities are named interfaces discovered by type assertion:
// [TxnLimiter] (store/etcd) bounds one transaction's size. [Lock] builds a mutual-exclusion lock with a fencing token on
// top of any of them; it records who holds it ([Holder]: owner, pid, host,
// since), and [TryAcquire] and [Acquire] name that holder in a
// [*LockedError] (matching [ErrLocked]). A [Keeper] keeps a lease alive and
// closes its Lost channel once the lease may have expired; locks and
// package claim's sessions hold their leases through one.
package store
