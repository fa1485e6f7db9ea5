package spec_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
)

// A spec binds registered roles to a pool; Load checks it and Deployment
// builds the graph deployment to plan.
func ExampleLoad() {
	// The program's roles: an authority for the deployment, a peer URL per
	// node, and a member that reads every peer's URL, a token and the
	// authority's certificate.
	type CAOut struct{ CertPEM string }
	type PeerURLOut struct{ URL string }
	type MemberIn struct {
		Peers role.All[PeerURLOut]
		Token string `attr:"etcd.token" default:"mason"`
		CA    string `attr:"etcd.ca_pem"`
	}
	type MemberOut struct{ InitialCluster string }
	ca := role.Func(role.Meta{Name: "ca", Version: "1", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, _ struct{}) (CAOut, error) {
			return CAOut{CertPEM: "-----BEGIN CERTIFICATE----- …"}, nil
		})
	peerURL := role.Func(role.Meta{Name: "peer-url", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURLOut, error) {
			return PeerURLOut{URL: "https://" + rc.Node().Name + ":2380"}, nil
		})
	member := role.Func(role.Meta{Name: "member", Version: "3.5"},
		func(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
			var parts []string
			for _, p := range in.Peers {
				parts = append(parts, p.Node+"="+p.Value.URL)
			}
			return MemberOut{InitialCluster: strings.Join(parts, ",")}, nil
		})

	// The registry is what specs may name.
	reg := spec.NewRegistry()
	if err := reg.Roles(role.Of(peerURL), role.Of(member), role.Of(ca)); err != nil {
		fmt.Println(err)
		return
	}
	src := `
deployment = "etcd"

variable "members" {
  type    = number
  default = 2
}

pool "members" {
  count = var.members
}

role "ca" {}

role "peer-url" {
  on = [pool.members]
}

role "member" {
  on = [pool.members]
  attrs = {
    "etcd.token"  = format("prod-%d", var.members)
    "etcd.ca_pem" = role.ca.output.cert_pem
  }
  inputs = {
    Peers = role.peer-url.outputs
  }
}
`
	s, diags := spec.Load(reg, []spec.File{{Name: "etcd.hcl", Src: []byte(src)}}, spec.Options{Vars: map[string]string{"members": "3"}})
	if diags.HasErrors() {
		fmt.Print(spec.Format(diags))
		return
	}
	d, err := s.Deployment(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := graph.NewPlan(context.Background(), d, mem.New())
	if err != nil {
		fmt.Print(spec.Format(s.Diagnostics(err)))
		return
	}
	fmt.Print(plan)
	v, _ := d.Attrs().Lookup("etcd.token")
	fmt.Println(v)

	// A mistake is reported where it was made.
	_, diags = spec.Load(reg, []spec.File{{Name: "bad.hcl", Src: []byte(`deployment = "x"
role "membr" {}
`)}}, spec.Options{})
	fmt.Print(spec.Format(diags))
	// Output:
	// plan for etcd: 7 to run, 0 to run if changed, 0 converged
	//   run            ca: new
	//   run            peer-url@members-1: new
	//   run            peer-url@members-2: new
	//   run            peer-url@members-3: new
	//   run            member@members-1: new
	//   run            member@members-2: new
	//   run            member@members-3: new
	// etcd.token = prod-3 (from deployment (etcd.hcl:22))
	// bad.hcl:2:6: error: Unknown role: This program has no role "membr". Did you mean "member"? Registered roles: ca, member, peer-url.
}
