package authdns

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/miekg/dns"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
)

// Zone describes a zone the server is authoritative for: netsvc.Zone,
// named here too since this is where zones are served.
type Zone = netsvc.Zone

// zoneRecord is what the store keeps under a zone key.
type zoneRecord struct {
	Zone
	Serial uint32 `json:"serial"`
}

// normalized checks z and fills in its defaults.
func normalized(z Zone) (Zone, error) {
	if z.Name == "" {
		return z, fmt.Errorf("authdns: zone has no name: %w", netsvc.ErrInvalid)
	}
	if _, ok := dns.IsDomainName(z.Name); !ok || strings.ContainsAny(z.Name, "/ \t") {
		return z, fmt.Errorf("authdns: zone name %q is not a domain name: %w", z.Name, netsvc.ErrInvalid)
	}
	z.Name = netsvc.Fqdn(".", z.Name)
	if len(z.NS) == 0 {
		z.NS = []string{netsvc.Fqdn(z.Name, "ns")}
	}
	ns := make([]string, len(z.NS))
	for i, n := range z.NS {
		ns[i] = netsvc.Fqdn(z.Name, n)
	}
	z.NS = ns
	if z.Admin == "" {
		z.Admin = "hostmaster"
	}
	z.Admin = netsvc.Fqdn(z.Name, z.Admin)
	if z.TTL == 0 {
		z.TTL = 300
	}
	if z.NegativeTTL == 0 {
		z.NegativeTTL = 60
	}
	return z, nil
}

func (z zoneRecord) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: z.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.TTL},
		Ns:      z.NS[0],
		Mbox:    z.Admin,
		Serial:  z.Serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  604800,
		Minttl:  z.NegativeTTL,
	}
}

// parseSet validates rs for zone and returns it normalized (absolute name,
// canonical values, TTL filled in) together with its records.
func parseSet(z Zone, rs netsvc.RecordSet) (netsvc.RecordSet, []dns.RR, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("authdns: record set %s %s in zone %s: %s: %w", rs.Name, rs.Type, z.Name, fmt.Sprintf(format, args...), netsvc.ErrInvalid)
	}
	if !rs.Type.Valid() {
		return rs, nil, bad("type must be one of A, AAAA, CNAME, SRV, TXT, PTR")
	}
	name := netsvc.Fqdn(z.Name, rs.Name)
	if _, ok := dns.IsDomainName(name); !ok || strings.ContainsAny(name, "/ \t\"\\;()") || strings.Contains(name, "*") {
		return rs, nil, bad("%q is not a plain domain name (wildcards are not supported)", name)
	}
	if !netsvc.InZone(z.Name, name) {
		return rs, nil, bad("name %s is outside the zone", name)
	}
	if len(rs.Values) == 0 {
		return rs, nil, bad("no values (use Delete to remove a record set)")
	}
	if rs.Type == netsvc.TypeCNAME {
		if name == z.Name {
			return rs, nil, bad("a CNAME cannot sit at the zone apex")
		}
		if len(rs.Values) != 1 {
			return rs, nil, bad("a CNAME has exactly one value")
		}
	}
	ttl := rs.TTL
	if ttl == 0 {
		ttl = z.TTL
	}
	out := netsvc.RecordSet{Name: name, Type: rs.Type, TTL: ttl, Values: make([]string, 0, len(rs.Values))}
	rrs := make([]dns.RR, 0, len(rs.Values))
	seen := map[string]bool{}
	for _, v := range rs.Values {
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: ttl}
		var rr dns.RR
		switch rs.Type {
		case netsvc.TypeA, netsvc.TypeAAAA:
			ip, err := netip.ParseAddr(strings.TrimSpace(v))
			if err != nil || ip.Zone() != "" {
				return rs, nil, bad("value %q is not an IP address", v)
			}
			if rs.Type == netsvc.TypeA {
				if !ip.Unmap().Is4() {
					return rs, nil, bad("value %q is not an IPv4 address", v)
				}
				hdr.Rrtype = dns.TypeA
				a4 := ip.Unmap().As4()
				rr = &dns.A{Hdr: hdr, A: a4[:]}
			} else {
				if !ip.Is6() || ip.Is4In6() {
					return rs, nil, bad("value %q is not an IPv6 address", v)
				}
				hdr.Rrtype = dns.TypeAAAA
				a16 := ip.As16()
				rr = &dns.AAAA{Hdr: hdr, AAAA: a16[:]}
			}
		case netsvc.TypeTXT:
			if len(v) > 4000 {
				return rs, nil, bad("TXT value longer than 4000 bytes")
			}
			hdr.Rrtype = dns.TypeTXT
			rr = &dns.TXT{Hdr: hdr, Txt: chunk(v)}
		default:
			if strings.ContainsAny(v, "\n;\"()") {
				return rs, nil, bad("value %q contains zone-file syntax", v)
			}
			p := dns.NewZoneParser(strings.NewReader(fmt.Sprintf("%s %d IN %s %s\n", name, ttl, rs.Type, v)), z.Name, "")
			r, ok := p.Next()
			if err := p.Err(); err != nil || !ok {
				return rs, nil, bad("value %q does not parse as %s data: %v", v, rs.Type, err)
			}
			if _, more := p.Next(); more {
				return rs, nil, bad("value %q holds more than one record", v)
			}
			if r.Header().Rrtype != dns.StringToType[string(rs.Type)] {
				return rs, nil, bad("value %q does not parse as %s data", v, rs.Type)
			}
			lowerTargets(r)
			rr = r
		}
		val := rdata(rr)
		if rs.Type == netsvc.TypeTXT {
			val = v
		}
		if seen[val] {
			continue
		}
		seen[val] = true
		out.Values = append(out.Values, val)
		rrs = append(rrs, rr)
	}
	return out, rrs, nil
}

// chunk splits a TXT value into the 255-byte strings the wire format needs.
func chunk(v string) []string {
	if len(v) <= 255 {
		return []string{v}
	}
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

func lowerTargets(rr dns.RR) {
	switch r := rr.(type) {
	case *dns.CNAME:
		r.Target = strings.ToLower(r.Target)
	case *dns.PTR:
		r.Ptr = strings.ToLower(r.Ptr)
	case *dns.SRV:
		r.Target = strings.ToLower(r.Target)
	}
}

// rdata is the zone-file text of rr without its header.
func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// zoneData is the immutable, query-ready form of one zone.
type zoneData struct {
	rec zoneRecord
	soa *dns.SOA
	// nodes maps an owner name to its record sets by type.
	nodes map[string]map[uint16][]dns.RR
	// ents are empty non-terminals: names with no records of their own
	// but with records below them, which exist (NODATA, not NXDOMAIN).
	ents map[string]bool
	// parsed caches each stored record set by key, so that a rebuild after
	// one change parses only what changed.
	parsed map[string]parsedSet
	// rev is a store revision the zone reflects every change up to.
	rev int64
}

type parsedSet struct {
	raw  string // the stored value
	name string
	typ  uint16
	rrs  []dns.RR
}

// buildZone makes the query-ready zone from its stored record sets,
// reusing the parsed sets of prev (which may be nil) whose values did not
// change.
func buildZone(rec zoneRecord, ents []store.Entry, prev *zoneData) (*zoneData, error) {
	zd := &zoneData{rec: rec, soa: rec.soa(), nodes: map[string]map[uint16][]dns.RR{}, ents: map[string]bool{}, parsed: make(map[string]parsedSet, len(ents))}
	apex := map[uint16][]dns.RR{dns.TypeSOA: {zd.soa}}
	for _, n := range rec.NS {
		apex[dns.TypeNS] = append(apex[dns.TypeNS], &dns.NS{Hdr: dns.RR_Header{Name: rec.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: rec.TTL}, Ns: n})
	}
	zd.nodes[rec.Name] = apex
	for _, e := range ents {
		ps, ok := parsedSet{}, false
		if prev != nil {
			ps, ok = prev.parsed[e.Key]
			ok = ok && ps.raw == string(e.Value)
		}
		if !ok {
			rs, err := decodeSet(e.Value)
			if err != nil {
				return nil, fmt.Errorf("authdns: record set %s is corrupt: %w", e.Key, err)
			}
			_, rrs, err := parseSet(rec.Zone, rs)
			if err != nil {
				return nil, err
			}
			ps = parsedSet{raw: string(e.Value), name: rs.Name, typ: dns.StringToType[string(rs.Type)], rrs: rrs}
		}
		zd.parsed[e.Key] = ps
		node := zd.nodes[ps.name]
		if node == nil {
			node = map[uint16][]dns.RR{}
			zd.nodes[ps.name] = node
		}
		node[ps.typ] = ps.rrs
	}
	for name := range zd.nodes {
		for parent := parentName(name); parent != "" && parent != rec.Name && netsvc.InZone(rec.Name, parent); parent = parentName(parent) {
			if _, ok := zd.nodes[parent]; ok || zd.ents[parent] {
				break
			}
			zd.ents[parent] = true
		}
	}
	return zd, nil
}

func parentName(name string) string {
	i := strings.IndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return ""
	}
	return name[i+1:]
}

func sortSets(sets []netsvc.RecordSet) {
	sort.Slice(sets, func(i, j int) bool {
		if sets[i].Name != sets[j].Name {
			return sets[i].Name < sets[j].Name
		}
		return sets[i].Type < sets[j].Type
	})
}

func decodeSet(b []byte) (netsvc.RecordSet, error) {
	var rs netsvc.RecordSet
	err := json.Unmarshal(b, &rs)
	return rs, err
}
