package netsvc

import (
	"context"
	"net/netip"
	"time"
)

// IPAM hands out addresses from named ranges. Allocation is idempotent by
// owner: the same owner asking again in the same range gets the address it
// already holds, so a role that re-runs does not leak addresses.
type IPAM interface {
	// AddRange creates a range, or does nothing when an identical range of
	// that name exists. A different range under an existing name is an
	// error: ranges are not silently redefined under live allocations.
	AddRange(ctx context.Context, r Range) error
	// Allocate gives req.Owner an address from req.Range: req.Addr when it
	// is set, the lowest free address otherwise. When the range is full the
	// error matches ErrExhausted; when req.Addr belongs to someone else it
	// matches ErrAddrInUse.
	Allocate(ctx context.Context, req Request) (Allocation, error)
	// Release frees the address owner holds in the range. Releasing what
	// the owner does not hold is not an error.
	Release(ctx context.Context, rangeName, owner string) error
	// Allocations lists the allocations of a range, sorted by address.
	Allocations(ctx context.Context, rangeName string) ([]Allocation, error)
}

// Range is a pool of IPv4 or IPv6 addresses.
type Range struct {
	// Name identifies the range ("lab-nodes").
	Name string `json:"name"`
	// Prefix is the subnet the range lives in (10.78.0.0/24, fd00:78::/64).
	Prefix netip.Prefix `json:"prefix"`
	// First and Last bound the addresses handed out, inclusive. When unset
	// they default to the first address after the subnet's own address and
	// the last address of the subnet (for IPv4, the one before broadcast).
	First netip.Addr `json:"first,omitzero"`
	Last  netip.Addr `json:"last,omitzero"`
	// Reserved addresses are never handed out by next-free allocation (the
	// gateway, a VIP); they can still be requested explicitly.
	Reserved []netip.Addr `json:"reserved,omitempty"`
}

// Request asks for an address.
type Request struct {
	// Range names the range to allocate from.
	Range string `json:"range"`
	// Owner is who holds the address ("node/etcd-2", "role/api-vip"). It is
	// required and is the idempotency key.
	Owner string `json:"owner"`
	// Note is free text kept with the allocation, for people.
	Note string `json:"note,omitempty"`
	// Addr, when valid, asks for this specific address.
	Addr netip.Addr `json:"addr,omitzero"`
}

// Allocation is one address held by an owner.
type Allocation struct {
	Range   string     `json:"range"`
	Addr    netip.Addr `json:"addr"`
	Owner   string     `json:"owner"`
	Note    string     `json:"note,omitempty"`
	Created time.Time  `json:"created"`
}
