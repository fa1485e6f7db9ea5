package role_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// A role is a Go type; its input struct is its dependency list. Here a
// one-function role computes each node's peer URL, and a second role
// consumes the peer URLs of every node — cluster linking — plus a plain
// attribute with a default.
func Example() {
	type PeerURL struct{ URL string }
	peerURL := role.Func(role.Meta{Name: "peer-url"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURL, error) {
			return PeerURL{URL: "https://" + rc.Node().InterfaceAddr.String() + ":2380"}, nil
		})

	type ConfigIn struct {
		Peers role.All[PeerURL]
		Token string `attr:"etcd.cluster_token" default:"mason"`
	}
	type ConfigOut struct{ InitialCluster string }
	config := role.Func(role.Meta{Name: "etcd-config"},
		func(ctx context.Context, rc *role.Context, in ConfigIn) (ConfigOut, error) {
			var parts []string
			for _, p := range in.Peers {
				parts = append(parts, p.Node+"="+p.Value.URL)
			}
			return ConfigOut{InitialCluster: strings.Join(parts, ",")}, nil
		})

	ctx := context.Background()
	peerDef, configDef := role.Of(peerURL), role.Of(config)

	// What the graph does for you: run the producers on every node...
	var outputs []role.Output
	for i, name := range []string{"n1", "n2", "n3"} {
		node := &provider.Node{Name: name, InterfaceAddr: netip.AddrFrom4([4]byte{10, 78, 0, byte(11 + i)})}
		out, _ := peerDef.Run(ctx, role.NewContext(role.ContextOptions{Role: "peer-url", Node: node}), struct{}{})
		outputs = append(outputs, role.Output{Role: "peer-url", Node: name, Value: out})
	}
	// ...then bind the consumer's input from them and the attributes.
	vs := attr.NewValues()
	_ = vs.SetAny("etcd.cluster_token", "prod-7", attr.FromSpec(attr.LayerDeployment, "deploy.hcl", 4))
	in, bindings, err := configDef.Bind(role.Env{Node: "n1", Attrs: vs, Outputs: outputs})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := configDef.Run(ctx, role.NewContext(role.ContextOptions{Role: "etcd-config"}), in)
	fmt.Println(out.(ConfigOut).InitialCluster)
	fmt.Println(bindings[1])
	// Output:
	// n1=https://10.78.0.11:2380,n2=https://10.78.0.12:2380,n3=https://10.78.0.13:2380
	// Token <- deployment (deploy.hcl:4)
}
