package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind says what a leaf certificate is for.
type Kind int

// Certificate kinds.
const (
	// Server certificates name a node's DNS names and IPs and carry the
	// server-auth usage.
	Server Kind = iota + 1
	// Client certificates carry a user (CN) and its groups (O) and the
	// client-auth usage.
	Client
	// Peer certificates are server certificates that may also authenticate
	// as clients, as etcd members do to each other.
	Peer
)

// String returns "server", "client" or "peer".
func (k Kind) String() string {
	switch k {
	case Server:
		return "server"
	case Client:
		return "client"
	case Peer:
		return "peer"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, c := range []Kind{Server, Client, Peer} {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("pki: unknown certificate kind %q (want server, client or peer)", b)
}

// extKeyUsage returns the kind's extended key usages.
func (k Kind) extKeyUsage() []x509.ExtKeyUsage {
	switch k {
	case Server:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case Client:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case Peer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return nil
}

// Identity is who a certificate is issued to.
type Identity struct {
	// Name is the certificate's common name: the node's name for server and
	// peer certificates, the user ("system:node:n1", "admin") for client
	// certificates. Unless ID is set it also names the certificate in the
	// store, so one identity holds one current certificate per kind.
	Name string
	// ID names the certificate in the store when holders share a common
	// name: every API server of a Kubernetes cluster presents CN
	// "kubernetes", yet each holds its own certificate for its own names
	// ("kube-apiserver/cp1"). One ID holds one current certificate per
	// kind; "" (or the Name itself) means Name. It is not written into the
	// certificate.
	ID string
	// DNSNames are the exact DNS names a server answers to. Wildcards are
	// refused.
	DNSNames []string
	// IPs are the addresses a server answers on.
	IPs []netip.Addr
	// Groups become the subject's organizations (Kubernetes groups).
	Groups []string
}

// Request asks an authority for a leaf certificate.
type Request struct {
	Kind     Kind
	Identity Identity
	// Profile overrides the defaults of the kind; the zero value is fine.
	Profile Profile
}

// Profile shapes a leaf certificate.
type Profile struct {
	// Validity is how long the certificate is valid; 0 means 90 days. It is
	// cut short to the issuing CA's own expiry.
	Validity time.Duration
	// RenewBefore is how long before expiry Issue replaces a stored
	// certificate with a new one; 0 means a third of Validity.
	RenewBefore time.Duration
	// Algorithm is the leaf key's algorithm; 0 means the authority's.
	Algorithm Algorithm
}

// Limits on requests, so a bad caller cannot make the authority sign
// something absurd.
const (
	maxNames    = 100
	maxCNLength = 64 // RFC 5280 ub-common-name
)

// ErrRefused is matched (errors.Is) by every *RequestError.
var ErrRefused = errors.New("pki: request refused")

// RequestError says why a certificate request was refused. Nothing was
// signed.
type RequestError struct {
	Service string // the authority asked
	Field   string // "Identity.DNSNames[2]", "Kind", ...
	Value   string // the offending value (names and addresses are public)
	Reason  string // what is wrong and what to do
}

// Error implements the error interface.
func (e *RequestError) Error() string {
	v := ""
	if e.Value != "" {
		v = fmt.Sprintf(" %q", e.Value)
	}
	return fmt.Sprintf("pki: authority %q refused request: %s%s: %s", e.Service, e.Field, v, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RequestError) Is(target error) bool { return target == ErrRefused }

// constraints are the names an authority may sign for.
type constraints struct {
	domains  []string       // permitted DNS domains; empty: any
	networks []netip.Prefix // permitted IP ranges; empty: any
}

func (c constraints) allowsName(n string) bool {
	if len(c.domains) == 0 {
		return true
	}
	for _, d := range c.domains {
		if n == d || strings.HasSuffix(n, "."+d) {
			return true
		}
	}
	return false
}

func (c constraints) allowsIP(ip netip.Addr) bool {
	if len(c.networks) == 0 {
		return true
	}
	for _, p := range c.networks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// normalize checks r against the constraints and returns a canonical copy
// (names lower-cased, sorted and deduplicated) with defaults filled in.
func (r Request) normalize(service string, c constraints, caAlg Algorithm) (Request, error) {
	refuse := func(field, value, reason string) (Request, error) {
		return Request{}, &RequestError{Service: service, Field: field, Value: value, Reason: reason}
	}
	out := Request{Kind: r.Kind, Profile: r.Profile}
	switch r.Kind {
	case Server, Client, Peer:
	default:
		return refuse("Kind", r.Kind.String(), "want pki.Server, pki.Client or pki.Peer")
	}
	if err := checkText(r.Identity.Name); err != "" {
		return refuse("Identity.Name", printable(r.Identity.Name), err)
	}
	out.Identity.Name = r.Identity.Name
	if r.Identity.ID != "" && r.Identity.ID != r.Identity.Name {
		if err := checkID(r.Identity.ID); err != "" {
			return refuse("Identity.ID", printable(r.Identity.ID), err)
		}
		out.Identity.ID = r.Identity.ID
	}
	if len(r.Identity.DNSNames) > maxNames || len(r.Identity.IPs) > maxNames || len(r.Identity.Groups) > maxNames {
		return refuse("Identity", "", fmt.Sprintf("at most %d DNS names, IPs and groups each", maxNames))
	}
	for i, g := range r.Identity.Groups {
		if err := checkText(g); err != "" {
			return refuse(fmt.Sprintf("Identity.Groups[%d]", i), printable(g), err)
		}
		out.Identity.Groups = append(out.Identity.Groups, g)
	}
	for i, n := range r.Identity.DNSNames {
		field := func() string { return fmt.Sprintf("Identity.DNSNames[%d]", i) }
		norm, err := checkDNSName(n)
		if err != "" {
			return refuse(field(), printable(n), err)
		}
		if !c.allowsName(norm) {
			return refuse(field(), norm, fmt.Sprintf("outside the authority's permitted domains %v; use a name under one of them", c.domains))
		}
		out.Identity.DNSNames = append(out.Identity.DNSNames, norm)
	}
	for i, ip := range r.Identity.IPs {
		field := func() string { return fmt.Sprintf("Identity.IPs[%d]", i) }
		if !ip.IsValid() {
			return refuse(field(), "", "invalid (zero) address")
		}
		ip = ip.Unmap().WithZone("")
		if ip.IsUnspecified() || ip.IsMulticast() {
			return refuse(field(), ip.String(), "unspecified and multicast addresses name no node; use the node's own address")
		}
		if !c.allowsIP(ip) {
			return refuse(field(), ip.String(), fmt.Sprintf("outside the authority's permitted networks %v", c.networks))
		}
		out.Identity.IPs = append(out.Identity.IPs, ip)
	}
	if r.Kind != Client && len(out.Identity.DNSNames) == 0 && len(out.Identity.IPs) == 0 {
		return refuse("Identity", "", fmt.Sprintf("a %s certificate needs at least one DNS name or IP of the node", r.Kind))
	}
	slices.Sort(out.Identity.DNSNames)
	out.Identity.DNSNames = slices.Compact(out.Identity.DNSNames)
	slices.SortFunc(out.Identity.IPs, func(a, b netip.Addr) int { return a.Compare(b) })
	out.Identity.IPs = slices.Compact(out.Identity.IPs)
	slices.Sort(out.Identity.Groups)
	out.Identity.Groups = slices.Compact(out.Identity.Groups)

	p := &out.Profile
	if p.Validity < 0 || p.RenewBefore < 0 {
		return refuse("Profile", "", "validity and renew-before must not be negative")
	}
	if p.Validity == 0 {
		p.Validity = 90 * 24 * time.Hour
	}
	if p.Validity < time.Minute {
		return refuse("Profile.Validity", p.Validity.String(), "shorter than a minute; ask for at least one minute")
	}
	if p.RenewBefore == 0 {
		p.RenewBefore = p.Validity / 3
	}
	if p.RenewBefore >= p.Validity {
		return refuse("Profile.RenewBefore", p.RenewBefore.String(), "must be shorter than Validity")
	}
	if p.Algorithm == 0 {
		p.Algorithm = caAlg
	}
	if !p.Algorithm.valid() {
		return refuse("Profile.Algorithm", p.Algorithm.String(), "unknown key algorithm")
	}
	return out, nil
}

// checkText validates a CN or group: non-empty, at most 64 bytes of
// printable UTF-8, no wildcard.
func checkText(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxCNLength:
		return fmt.Sprintf("longer than %d bytes", maxCNLength)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.Contains(s, "*"):
		return "wildcards are never issued; name the exact identity"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "contains a control or non-printable character"
		}
	}
	return ""
}

// maxIDLength bounds Identity.ID, which only names a store record.
const maxIDLength = 253

// checkID validates an Identity.ID: printable UTF-8 of at most 253 bytes.
func checkID(s string) string {
	switch {
	case len(s) > maxIDLength:
		return fmt.Sprintf("longer than %d bytes", maxIDLength)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "contains a control or non-printable character"
		}
	}
	return ""
}

// key is the name the identity's certificate is stored under: its ID, or
// its Name when it has none.
func (id Identity) key() string {
	if id.ID != "" {
		return id.ID
	}
	return id.Name
}

// checkDNSName validates and lower-cases one DNS name: letters, digits and
// hyphens in labels of 1-63 bytes, at most 253 bytes, no wildcard, not an
// IP literal.
func checkDNSName(n string) (string, string) {
	if strings.Contains(n, "*") {
		return "", "wildcard names are never issued; request each node's exact name"
	}
	n = strings.ToLower(strings.TrimSuffix(n, "."))
	if n == "" {
		return "", "must not be empty"
	}
	if len(n) > 253 {
		return "", "longer than 253 bytes"
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", "an IP address, not a DNS name; put it in Identity.IPs"
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return "", "each label must be 1 to 63 bytes"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", "labels must not start or end with a hyphen"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", "only letters, digits, hyphens and dots are allowed"
			}
		}
	}
	return n, ""
}

// printable makes a refused value safe to print in an error.
func printable(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// sameIdentity reports whether two normalized identities are equal.
func sameIdentity(a, b Identity) bool {
	return a.Name == b.Name && a.ID == b.ID && slices.Equal(a.DNSNames, b.DNSNames) &&
		slices.Equal(a.IPs, b.IPs) && slices.Equal(a.Groups, b.Groups)
}
