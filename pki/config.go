package pki

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/masonops/mason/seal"
)

// Options configure a Manager.
type Options struct {
	// Key is the key-encryption key that seals every private key the
	// Manager stores (see package seal: seal.LoadFile, seal.Load). Keep it
	// outside the store. Without it no authority can be created or loaded;
	// with another key than the one the store's authorities were sealed
	// with, the Manager refuses to create or load any (ErrWrongKEK).
	Key *seal.KEK
	// KEK is Key as raw bytes (16, 24 or 32; use 32), used when Key is nil.
	//
	// Deprecated: load the key with package seal and set Key; it checks
	// the key file's permissions and never prints the key.
	KEK []byte
	// Logger receives one line per authority created, certificate issued,
	// revoked or rotated. It never receives key material. nil discards.
	Logger *slog.Logger
	// Prefix is the store key prefix; "" means "pki/".
	Prefix string
	// Defaults configure the authorities that Issue creates on first use of
	// a service name.
	Defaults AuthorityConfig
	// Now is the clock; nil means time.Now. Tests use it to issue
	// certificates that have already expired.
	Now func() time.Time
}

// AuthorityConfig describes a service's certificate authority.
//
// The path-length limit is fixed by the shape: a root without an
// intermediate has MaxPathLen 0 (it signs only leaves); with an intermediate
// the root has MaxPathLen 1 and the intermediate 0.
type AuthorityConfig struct {
	// Algorithm of the CA keys (and, by default, of the leaves); 0 means
	// ECDSA P-256.
	Algorithm Algorithm
	// Intermediate, when true, makes the root sign only an intermediate CA,
	// which signs the leaves. The root key is then used only for rotation.
	Intermediate bool
	// Domains, when set, name-constrain the root: it can only vouch for
	// these DNS domains and names under them, and requests for any other
	// name are refused.
	Domains []string
	// Networks, when set, constrain the IP addresses the root can vouch for.
	Networks []netip.Prefix
	// Organization is the CA subject's organization; "" means "mason".
	Organization string
	// RootValidity is the root's lifetime; 0 means 10 years.
	RootValidity time.Duration
	// IntermediateValidity is the intermediate's lifetime; 0 means 5 years,
	// cut to the root's.
	IntermediateValidity time.Duration
	// CRLValidity is how long a published CRL is valid (its nextUpdate);
	// 0 means 7 days. CRL refreshes it when half of that has passed.
	CRLValidity time.Duration
}

func (c AuthorityConfig) normalize() (AuthorityConfig, error) {
	if c.Algorithm == 0 {
		c.Algorithm = ECDSAP256
	}
	if !c.Algorithm.valid() {
		return c, fmt.Errorf("pki: unknown key algorithm %v", c.Algorithm)
	}
	var doms []string
	for _, d := range c.Domains {
		n, why := checkDNSName(strings.TrimPrefix(d, "."))
		if why != "" {
			return c, fmt.Errorf("pki: permitted domain %q: %s", d, why)
		}
		doms = append(doms, n)
	}
	slices.Sort(doms)
	c.Domains = slices.Compact(doms)
	var nets []netip.Prefix
	for _, p := range c.Networks {
		if !p.IsValid() {
			return c, fmt.Errorf("pki: permitted network %v is not a valid prefix", p)
		}
		nets = append(nets, p.Masked())
	}
	slices.SortFunc(nets, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	c.Networks = slices.Compact(nets)
	if c.Organization == "" {
		c.Organization = "mason"
	}
	if c.RootValidity == 0 {
		c.RootValidity = 10 * 365 * 24 * time.Hour
	}
	if c.IntermediateValidity == 0 {
		c.IntermediateValidity = 5 * 365 * 24 * time.Hour
	}
	if c.IntermediateValidity > c.RootValidity {
		c.IntermediateValidity = c.RootValidity
	}
	if c.CRLValidity == 0 {
		c.CRLValidity = 7 * 24 * time.Hour
	}
	if c.RootValidity < time.Hour || c.CRLValidity < time.Minute {
		return c, fmt.Errorf("pki: root validity must be at least an hour and CRL validity at least a minute")
	}
	return c, nil
}

func (c AuthorityConfig) equal(o AuthorityConfig) bool {
	return c.Algorithm == o.Algorithm && c.Intermediate == o.Intermediate &&
		slices.Equal(c.Domains, o.Domains) && slices.Equal(c.Networks, o.Networks) &&
		c.Organization == o.Organization && c.RootValidity == o.RootValidity &&
		c.IntermediateValidity == o.IntermediateValidity && c.CRLValidity == o.CRLValidity
}

func (c AuthorityConfig) constraints() constraints {
	return constraints{domains: c.Domains, networks: c.Networks}
}

func describeConfig(c AuthorityConfig) string {
	return fmt.Sprintf("algorithm %v, intermediate %v, domains %v, networks %v", c.Algorithm, c.Intermediate, c.Domains, c.Networks)
}
