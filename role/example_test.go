package role_test

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
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

// A role declares the services it uses as Uses fields of its input: the
// binder fills them from the application's services (or from the node's
// transport, when it implements the type), and a missing one is an error
// naming the role, the node and the field before anything runs.
func ExampleUses() {
	type Registry interface{ Register(name string) string }
	type RegisterIn struct {
		DNS  role.Uses[Registry]
		Name string `attr:"dns.name" default:"n1.lab"`
	}
	register := role.Of(role.Func(role.Meta{Name: "register"},
		func(ctx context.Context, rc *role.Context, in RegisterIn) (struct{ FQDN string }, error) {
			return struct{ FQDN string }{in.DNS.Value.Register(in.Name)}, nil
		}))

	_, err := register.BindInput(role.Env{Node: "n1", Services: role.NewServices()})
	fmt.Println(strings.Contains(err.Error(), `role "register" on n1: input DNS (role.Uses[role_test.Registry]): no service of type role_test.Registry is registered`))

	svcs := role.NewServices()
	role.Provide[Registry](svcs, zone("lab."))
	in, bindings, err := register.Bind(role.Env{Node: "n1", Services: svcs})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := register.Run(context.Background(), role.NewContext(role.ContextOptions{Role: "register"}), in)
	fmt.Println(out)
	fmt.Println(bindings[0])
	// Output:
	// true
	// {n1.lab.}
	// DNS <- service role_test.Registry (registered with role.Provide)
}

// zone is a stand-in DNS registry for ExampleUses.
type zone string

func (z zone) Register(name string) string { return name + "." }

// Resolve is the one wiring rule: here, which outputs fill an All input
// and a Same input of a member on n2.
func ExampleInput_Resolve() {
	type PeerURL struct{ URL string }
	member := role.Of(role.Func(role.Meta{Name: "member"},
		func(ctx context.Context, rc *role.Context, in struct {
			Peers role.All[PeerURL]
			Own   role.Same[PeerURL]
		}) (struct{}, error) {
			return struct{}{}, nil
		}))
	producers := []role.Producer{
		{Role: "peer-url", Node: "n3", Out: reflect.TypeFor[PeerURL]()},
		{Role: "peer-url", Node: "n1", Out: reflect.TypeFor[PeerURL]()},
		{Role: "peer-url", Node: "n2", Out: reflect.TypeFor[PeerURL]()},
	}
	for _, in := range member.Inputs() {
		m, err := in.Resolve("member", "n2", producers, nil)
		var ids []string
		for _, i := range m {
			ids = append(ids, producers[i].ID())
		}
		fmt.Println(in.Describe(), ids, err)
	}
	// Output:
	// Peers (role.All[role_test.PeerURL]) [peer-url@n1 peer-url@n2 peer-url@n3] <nil>
	// Own (role.Same[role_test.PeerURL]) [peer-url@n2] <nil>
}

// A plan says which inputs changed by comparing digests field by field.
// DigestInputs maps them by name; DigestInputsInto writes them into a
// slice the caller owns, in DigestedInputs order — what an executor that
// digests every node-role's input calls.
func ExampleDef_DigestInputsInto() {
	type Endpoint struct{ URL string }
	type In struct {
		API  role.Same[Endpoint]
		Port int `attr:"api.port" default:"6443"`
	}
	def := role.Of(role.Func(role.Meta{Name: "client"}, func(ctx context.Context, rc *role.Context, in In) (struct{}, error) {
		return struct{}{}, nil
	}))
	digest := func(url string) (string, []string) {
		in := In{API: role.Same[Endpoint]{Value: Endpoint{url}, Role: "api"}, Port: 6443}
		per := make([]string, len(def.DigestedInputs()))
		total, err := def.DigestInputsInto(in, nil, per)
		if err != nil {
			panic(err)
		}
		return total, per
	}
	t1, f1 := digest("https://10.0.0.1:6443")
	t2, f2 := digest("https://10.0.0.2:6443")
	fmt.Println(def.DigestedInputs())
	fmt.Println("total changed:", t1 != t2)
	for k, name := range def.DigestedInputs() {
		fmt.Printf("%s changed: %v\n", name, f1[k] != f2[k])
	}
	// Output:
	// [API Port]
	// total changed: true
	// API changed: true
	// Port changed: false
}

// An executor that keeps memory per run can build each run's Context in
// it: InitContext fills storage the caller provides, where NewContext
// allocates.
func ExampleInitContext() {
	type run struct {
		node provider.Node
		rc   role.Context // the run's Context, in the run's own memory
	}
	runs := make([]run, 3) // one allocation for three runs
	for i := range runs {
		r := &runs[i]
		r.node = provider.Node{Name: fmt.Sprintf("n%d", i+1)}
		rc := role.InitContext(&r.rc, role.ContextOptions{Deployment: "demo", Role: "hostname", Node: &r.node, Attempt: 1})
		fmt.Println(rc.Role(), "on", rc.Node().Name, "attempt", rc.Attempt())
	}
	// Output:
	// hostname on n1 attempt 1
	// hostname on n2 attempt 1
	// hostname on n3 attempt 1
}
