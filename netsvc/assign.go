package netsvc

import (
	"context"
	"fmt"
)

// AssignName allocates an address for owner from rangeName and publishes it
// in DNS: an A or AAAA record for host in zone, and the PTR record in
// reverseZone (skip the PTR by passing ""). It is idempotent: a role that
// re-runs gets the same address and rewrites the same records.
func AssignName(ctx context.Context, ipam IPAM, dns DNS, rangeName, owner, zone, host, reverseZone string) (Allocation, error) {
	a, err := ipam.Allocate(ctx, Request{Range: rangeName, Owner: owner, Note: "dns " + Fqdn(zone, host)})
	if err != nil {
		return Allocation{}, fmt.Errorf("netsvc: assigning a name to %s: %w", owner, err)
	}
	typ := TypeA
	if !a.Addr.Unmap().Is4() {
		typ = TypeAAAA
	}
	name := Fqdn(zone, host)
	if err := dns.Upsert(ctx, zone, RecordSet{Name: name, Type: typ, Values: []string{a.Addr.Unmap().String()}}); err != nil {
		return a, fmt.Errorf("netsvc: publishing %s for %s: %w", name, owner, err)
	}
	if reverseZone != "" {
		rev := ReverseName(a.Addr)
		if err := dns.Upsert(ctx, reverseZone, RecordSet{Name: rev, Type: TypePTR, Values: []string{name}}); err != nil {
			return a, fmt.Errorf("netsvc: publishing PTR %s for %s: %w", rev, owner, err)
		}
	}
	return a, nil
}
