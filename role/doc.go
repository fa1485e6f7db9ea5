// Package role is the contract between mason and the code that configures
// machines.
//
// A role is a Go type with a Meta method and a Run method that takes a typed
// input struct and returns a typed output struct:
//
//	type Member struct{}
//
//	type MemberIn struct {
//		Cert  role.Same[pki.Bundle]  // output of the role producing pki.Bundle on this node
//		Peers role.All[PeerURLOut]   // PeerURL's output on every node it is bound to
//		Token string `attr:"etcd.cluster_token" default:"mason"`
//	}
//
//	func (Member) Meta() role.Meta { return role.Meta{Name: "etcd-member", Version: "3.4"} }
//
//	func (Member) Run(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error)
//
// The input struct is the role's dependency list. Each field is wired from
// one of four places, decided by its type:
//
//   - a plain field tagged `attr:"name"` takes the attribute's value from the
//     layered attributes (override > role outputs > node > deployment), else
//     the `default:"..."` tag;
//   - [Same][T] takes the output of type T of the role on the same node;
//   - [All][T] takes the outputs of type T of every node-role in the
//     deployment — cluster linking: every etcd member's peer URL;
//   - [One][T] takes the single output of type T in the deployment, from
//     whichever node produced it — the Swarm manager's join token.
//
// An output field tagged `attr:"name"` is published as an attribute, so
// roles further down can read it by name.
//
// [Describe] checks a role's shape once and returns a [Def], the type-erased
// form the graph schedules. [Def.Bind] fills an input struct from an [Env];
// a missing or mistyped input fails before anything runs, with a
// [BindError] naming the role, the field and every place that was looked at.
//
// While it runs, a role reaches the world only through its [Context]: its
// node (addresses and a Transport to run commands and copy files), a logger,
// and the services the application registered (a CA, DNS, IPAM, a load
// balancer), looked up by type with [Service].
package role
