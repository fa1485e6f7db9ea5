package netsvc

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// DNS manages record sets in the zones an authoritative server serves.
//
// Zones are configured when the server is set up (they carry the SOA and NS
// records); the contract only changes the records inside them, which is all
// a role needs and all RFC 2136 allows a dynamic-update client to do.
type DNS interface {
	// Upsert replaces the record set named by rs.Name and rs.Type in zone
	// with rs. The change is served as soon as Upsert returns and bumps the
	// zone's SOA serial. It fails with an error matching ErrUnknownZone when
	// the server is not authoritative for zone.
	Upsert(ctx context.Context, zone string, rs RecordSet) error
	// Delete removes the record set (name, typ) from zone. Deleting a record
	// set that does not exist is not an error.
	Delete(ctx context.Context, zone, name string, typ RRType) error
	// Records lists the record sets of zone, sorted by name then type,
	// without the zone's own SOA and NS records.
	Records(ctx context.Context, zone string) ([]RecordSet, error)
}

// Zone describes a zone an authoritative server serves: its apex and the
// settings of its SOA and NS records. Zones are set up with the server
// (netsvc/authdns's AddZone, the daemon's client's AddZone); the DNS
// contract changes the records inside them.
type Zone struct {
	// Name is the zone's apex ("lab.example." or "78.10.in-addr.arpa.").
	Name string `json:"name"`
	// NS are the zone's name servers; empty means "ns.<zone>".
	NS []string `json:"ns,omitempty"`
	// Admin is the SOA RNAME (the zone admin's mailbox as a name); empty
	// means "hostmaster.<zone>".
	Admin string `json:"admin,omitempty"`
	// TTL is the default TTL of record sets that set none, and of the SOA
	// and NS records; zero means 300.
	TTL uint32 `json:"ttl,omitempty"`
	// NegativeTTL is the SOA minimum, how long resolvers cache NXDOMAIN
	// and NODATA; zero means 60.
	NegativeTTL uint32 `json:"negative_ttl,omitempty"`
}

// RRType is a DNS record type, spelled as in zone files ("A", "SRV").
type RRType string

// The record types the contract carries.
const (
	TypeA     RRType = "A"
	TypeAAAA  RRType = "AAAA"
	TypeCNAME RRType = "CNAME"
	TypeSRV   RRType = "SRV"
	TypeTXT   RRType = "TXT"
	TypePTR   RRType = "PTR"
)

// Valid reports whether t is one of the record types the contract carries.
func (t RRType) Valid() bool {
	switch t {
	case TypeA, TypeAAAA, TypeCNAME, TypeSRV, TypeTXT, TypePTR:
		return true
	}
	return false
}

// RecordSet is every record of one name and type.
type RecordSet struct {
	// Name is the owner name: fully qualified with a trailing dot
	// ("etcd1.lab.example."), relative to the zone ("etcd1"), or "@" for
	// the zone apex.
	Name string `json:"name"`
	// Type is the record type.
	Type RRType `json:"type"`
	// TTL in seconds; zero means the server's default.
	TTL uint32 `json:"ttl,omitempty"`
	// Values are the records' data in zone-file form, one per record:
	// "10.0.0.1" (A), "fd00::1" (AAAA), "host.example." (CNAME, PTR),
	// "10 5 2379 etcd1.example." (SRV: priority weight port target). A TXT
	// value is the literal text, without quotes.
	Values []string `json:"values"`
}

// Fqdn returns name made fully qualified inside zone: "@" is the apex, a
// name ending in a dot is already absolute, anything else is relative to
// zone. The result is lower case and ends with a dot.
func Fqdn(zone, name string) string {
	zone = canonical(zone)
	switch {
	case name == "@" || name == "":
		return zone
	case strings.HasSuffix(name, "."):
		return strings.ToLower(name)
	case zone == ".":
		return strings.ToLower(name) + "."
	default:
		return strings.ToLower(name) + "." + zone
	}
}

// InZone reports whether the fully qualified name lies inside zone.
func InZone(zone, fqdn string) bool {
	zone, fqdn = canonical(zone), canonical(fqdn)
	return zone == "." || fqdn == zone || strings.HasSuffix(fqdn, "."+zone)
}

func canonical(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// ReverseName returns the PTR owner name of addr: "4.3.2.1.in-addr.arpa."
// for 1.2.3.4, the nibble form under ip6.arpa. for IPv6.
func ReverseName(addr netip.Addr) string {
	addr = addr.Unmap()
	var b strings.Builder
	if addr.Is4() {
		a := addr.As4()
		for i := 3; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", a[i])
		}
		b.WriteString("in-addr.arpa.")
		return b.String()
	}
	a := addr.As16()
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

// ReverseZone returns the reverse zone that holds the PTR records of the
// addresses in prefix. The prefix length is rounded down to a zone boundary
// (a multiple of 8 bits for IPv4, 4 bits for IPv6), so 10.78.0.0/20 gives
// "78.10.in-addr.arpa." and fd00:1::/64 gives the 16-nibble ip6.arpa. zone.
func ReverseZone(prefix netip.Prefix) string {
	addr := prefix.Masked().Addr().Unmap()
	full := ReverseName(addr)
	labels := strings.Split(strings.TrimSuffix(full, "."), ".")
	// labels: address labels (least significant first) then the 2 suffix labels.
	step, n := 8, 4
	if !addr.Is4() {
		step, n = 4, 32
	}
	keep := prefix.Bits() / step
	return strings.Join(labels[n-keep:], ".") + "."
}
