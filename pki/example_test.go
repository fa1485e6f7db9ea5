package pki_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

// A service's authority, name-constrained to the lab's domain and network,
// issues an etcd member its peer certificate and refuses a wildcard.
func Example() {
	ctx := context.Background()
	st := mem.New()
	defer st.Close()

	kek, err := seal.Generate() // in real use: seal.LoadFile, a file only the controller can read
	if err != nil {
		panic(err)
	}
	m, err := pki.NewManager(st, pki.Options{Key: kek})
	if err != nil {
		panic(err)
	}
	etcd, err := m.Open(ctx, "etcd", pki.AuthorityConfig{
		Domains:  []string{"lab.example"},
		Networks: []netip.Prefix{netip.MustParsePrefix("10.78.0.0/16")},
	})
	if err != nil {
		panic(err)
	}

	b, err := etcd.Issue(ctx, pki.Request{Kind: pki.Peer, Identity: pki.Identity{
		Name:     "n1",
		DNSNames: []string{"n1.lab.example"},
		IPs:      []netip.Addr{netip.MustParseAddr("10.78.0.11")},
	}})
	if err != nil {
		panic(err)
	}
	leaf, err := b.Leaf()
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Kind, leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses, leaf.ExtKeyUsage)
	fmt.Println("key:", b.KeyPEM)

	_, err = etcd.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{
		Name: "all", DNSNames: []string{"*.lab.example"},
	}})
	fmt.Println(errors.Is(err, pki.ErrRefused))
	fmt.Println(err)

	_, err = etcd.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{
		Name: "n2", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.7")},
	}})
	fmt.Println(err)
	// Output:
	// peer n1 [n1.lab.example] [10.78.0.11] [serverAuth clientAuth]
	// key: [redacted]
	// true
	// pki: authority "etcd" refused request: Identity.DNSNames[0] "*.lab.example": wildcard names are never issued; request each node's exact name
	// pki: authority "etcd" refused request: Identity.IPs[0] "192.0.2.7": outside the authority's permitted networks [10.78.0.0/16]
}
