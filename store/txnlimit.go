package store

// TxnLimiter is an optional capability of a Store, discovered by type
// assertion (or with [MaxTxnOps]), in the manner of database/sql/driver's
// optional interfaces: a backend that bounds how many operations one
// [Store.Txn] may hold implements it. Writers that batch many records in
// one transaction — the graph's journal groups its commits — split their
// batches to fit; a Txn over the limit fails. store/etcd implements it
// (etcd's --max-txn-ops); the embedded backends (mem, bolt) have no such
// limit and need not.
type TxnLimiter interface {
	// MaxTxnOps returns the most writes, and separately the most
	// conditions, one Txn may hold; 0 means no limit.
	MaxTxnOps() int
}

// MaxTxnOps returns s's limit on the operations of one Txn, or 0 when s
// has none (it does not implement [TxnLimiter]).
func MaxTxnOps(s Store) int {
	if l, ok := s.(TxnLimiter); ok {
		return l.MaxTxnOps()
	}
	return 0
}
