package attr_test

import (
	"fmt"

	"github.com/masonops/mason/attr"
)

// Declare keys once, as package variables, then read and write them through
// layered Values that remember where each value came from.
func Example() {
	var clusterToken = attr.New[string]("etcd.cluster_token").
		WithDoc("shared token that keeps etcd clusters apart").
		WithDefault("mason")
	var joinToken = attr.New[string]("swarm.join_token").AsSecret()

	vs := attr.NewValues()
	tok, _ := attr.Get(vs, clusterToken)
	fmt.Println(tok)

	_ = attr.Set(vs, clusterToken, "prod-7", attr.FromSpec(attr.LayerDeployment, "deploy.hcl", 12))
	v, _ := attr.GetValue(vs, clusterToken)
	fmt.Println(v)

	_ = attr.Set(vs, joinToken, "SWMTKN-1-abc", attr.FromOutput("swarm-manager", "n1"))
	j, _ := attr.GetValue(vs, joinToken)
	fmt.Println(j)
	// Output:
	// mason
	// etcd.cluster_token = prod-7 (from deployment (deploy.hcl:12))
	// swarm.join_token = [redacted] (from output of swarm-manager on n1)
}
