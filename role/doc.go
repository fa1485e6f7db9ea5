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
//		CA    role.Uses[pki.Issuer]  // a service the application provides
//		Token string `attr:"etcd.cluster_token" default:"mason"`
//	}
//
//	func (Member) Meta() role.Meta { return role.Meta{Name: "etcd-member", Version: "3.4"} }
//
//	func (Member) Run(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error)
//
// The input struct is the role's dependency list. Each field is wired from
// one of five places, decided by its type:
//
//   - a plain field tagged `attr:"name"` takes the attribute's value from the
//     layered attributes (override > role outputs > node > deployment), else
//     the `default:"..."` tag;
//   - [Same][T] takes the output of type T of the role on the same node;
//   - [All][T] takes the outputs of type T of every node-role in the
//     deployment — cluster linking: every etcd member's peer URL;
//   - [One][T] takes the single output of type T in the deployment, from
//     whichever node produced it — the Swarm manager's join token;
//   - [Uses][T] takes the service of type T the application registered
//     with [Provide] (a CA, DNS, IPAM, a load balancer), or else the
//     node's Transport when it implements T: a capability of the node.
//
// An output field tagged `attr:"name"` is published as an attribute, so
// roles further down can read it by name.
//
// [Of] registers a role with its types: Go infers In and Out from the
// role's Run method, so passing anything that is not a role to Of — or a
// bare value to graph.Deployment.Bind or spec.Registry.Roles, which take
// only what Of returns — does not compile. Of checks the rest of the
// shape once (struct types, tags, defaults) and returns a [Def], which
// calls Run and Check without reflection. [Def.Bind] fills an input
// struct from an [Env]; a missing or mistyped input — a service no one
// provides included — fails before anything runs, with a [BindError]
// naming the role, the node, the field and every place that was looked
// at.
//
// Two capabilities are optional, discovered by Of like database/sql's
// driver.Pinger: a [Checker] tells whether what the role set up drifted
// (planning re-runs it), and an [Undoer] takes it back when its node
// leaves the deployment (an etcd member's member-remove, a Swarm node's
// drain and leave), given its last output. [FuncRole.WithUndo] gives a
// function role an Undo.
//
// While it runs, a role reaches the world through its [Context] (its node:
// addresses and a Transport to run commands and copy files; a logger) and
// through the services its input declares. Nothing is global. A role that
// waits a long time says how it is getting on with [Context.Progress]
// ("waiting for 3/5 nodes Ready"); the progress display shows it beside
// the running node-role.
package role
