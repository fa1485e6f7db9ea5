package pki_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

// MemberCert is a role that gets its node a peer certificate from the etcd
// authority, mid-workflow, through the pki.Issuer the application
// registered. Its output, a pki.Bundle, is what etcd-member takes as
// role.Same[pki.Bundle].
type MemberCert struct{}

func (MemberCert) Meta() role.Meta { return role.Meta{Name: "etcd-member-cert", Version: "1"} }

func (MemberCert) Run(ctx context.Context, rc *role.Context, _ struct{}) (pki.Bundle, error) {
	ca, err := role.Service[pki.Issuer](rc)
	if err != nil {
		return pki.Bundle{}, err
	}
	b, err := ca.Issue(ctx, "etcd", pki.Request{Kind: pki.Peer, Identity: pki.NodeIdentity(rc.Node(), "lab.example")})
	if err != nil {
		return pki.Bundle{}, err
	}
	if t := rc.Node().Transport; t != nil {
		if err := b.Install(ctx, t, pki.FilesIn("/etc/etcd/pki", "peer")); err != nil {
			return pki.Bundle{}, err
		}
	}
	return b, nil
}

// A role asks the application's CA for a certificate naming its node.
func ExampleIssuer_role() {
	ctx := context.Background()
	st := mem.New()
	defer st.Close()
	kek, err := seal.Generate() // in real use: seal.LoadFile, a file only the controller can read
	if err != nil {
		panic(err)
	}
	ca, err := pki.NewManager(st, pki.Options{Key: kek, Defaults: pki.AuthorityConfig{Domains: []string{"lab.example"}}})
	if err != nil {
		panic(err)
	}

	// The application registers its CA once...
	svcs := role.NewServices()
	role.Provide[pki.Issuer](svcs, ca)

	// ...and the graph runs the role on each node with a context like this.
	node := &provider.Node{Name: "n1", InterfaceAddr: netip.MustParseAddr("10.78.0.11")}
	rc := role.NewContext(role.ContextOptions{Role: "etcd-member-cert", Node: node, Services: svcs})
	b, err := MemberCert{}.Run(ctx, rc, struct{}{})
	if err != nil {
		panic(err)
	}
	leaf, err := b.Leaf()
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Service, b.Kind, leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)

	def, err := role.Describe(MemberCert{})
	if err != nil {
		panic(err)
	}
	fmt.Println(def.Name(), "outputs", def.Out())
	// Output:
	// etcd peer n1 [n1.lab.example] [10.78.0.11]
	// etcd-member-cert outputs pki.Bundle
}
