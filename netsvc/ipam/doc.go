// Package ipam is mason's embedded IP address manager. It implements
// netsvc.IPAM on top of any store.Store.
//
// Every allocation is two keys written in one store transaction, each on the
// condition that it does not exist yet: the address key (the address is
// taken) and the owner key (the owner holds an address in this range). The
// store's compare-and-swap makes that race-free between goroutines and
// between controllers sharing a store: of two allocators that pick the same
// address, one transaction fails and that allocator picks again. Within one
// process allocations are also serialized by a mutex, so a thousand
// concurrent callers queue instead of colliding a thousand times.
//
// Allocation is idempotent by owner: an owner that asks again gets the
// address it holds. Next-free allocation takes the lowest address of the
// range that is neither allocated nor reserved, for IPv4 and IPv6 alike; it
// looks at the allocated addresses only, so a /64 costs no more than a /24.
package ipam
