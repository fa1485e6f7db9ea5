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
// registered, which it declares as a role.Uses input. Its output, a
// pki.Bundle, is what etcd-member takes as role.Same[pki.Bundle].
type MemberCert struct{}

// MemberCertIn names the service the role uses.
type MemberCertIn struct {
	CA role.Uses[pki.Issuer]
}

func (MemberCert) Meta() role.Meta { return role.Meta{Name: "etcd-member-cert", Version: "1"} }

func (MemberCert) Run(ctx context.Context, rc *role.Context, in MemberCertIn) (pki.Bundle, error) {
	b, err := in.CA.Value.Issue(ctx, "etcd", pki.Request{Kind: pki.Peer, Identity: pki.NodeIdentity(rc.Node(), "lab.example")})
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

	// ...and the graph binds the role's input (the CA) and runs it on
	// each node with a context like this.
	def := role.Of(MemberCert{})
	node := &provider.Node{Name: "n1", InterfaceAddr: netip.MustParseAddr("10.78.0.11")}
	in, err := def.BindInput(role.Env{Node: node.Name, Services: svcs})
	if err != nil {
		panic(err)
	}
	rc := role.NewContext(role.ContextOptions{Role: "etcd-member-cert", Node: node, Services: svcs})
	out, err := def.Run(ctx, rc, in)
	if err != nil {
		panic(err)
	}
	b := out.(pki.Bundle)
	leaf, err := b.Leaf()
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Service, b.Kind, leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)

	fmt.Println(def.Name(), "outputs", def.Out())
	// Output:
	// etcd peer n1 [n1.lab.example] [10.78.0.11]
	// etcd-member-cert outputs pki.Bundle
}
