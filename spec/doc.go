// Package spec loads deployment specs written in HCL and turns them into
// graph deployments, so people describe a deployment the way Terraform
// users already think and get mason's plans, wiring checks and provenance.
//
// The application registers, in Go, what its specs may name: roles (by
// their Meta().Name), providers and services (by a name and a function
// that opens them from the block's settings), and attribute keys (for
// types, defaults, docs and validation). A spec then names the provider,
// pools of nodes, the roles bound to them, attribute values and variables:
//
//	deployment = "etcd"
//
//	variable "members" {
//	  type    = number
//	  default = 3
//	  validation {
//	    condition     = var.members % 2 == 1
//	    error_message = "An etcd cluster needs an odd number of members."
//	  }
//	}
//
//	provider "lab" {}
//
//	pool "members" {
//	  count  = var.members
//	  labels = { zone = "a" }
//	}
//
//	role "etcd-peer-url" { on = [pool.members] }
//
//	role "etcd-member" {
//	  on     = [pool.members]
//	  attrs  = { "etcd.binary" = "/usr/bin/etcd" }
//	  inputs = { Peers = role.etcd-peer-url.outputs }
//	}
//
// Load checks everything it can before anything runs and reports every
// problem at once, each an hcl.Diagnostic with file, line and column and a
// detail that says what to do: unknown roles, pools, attributes and
// outputs, values whose type does not fit the role's Go field, references
// the graph could not wire, reference cycles, failed variable validations.
// Spec.Deployment builds the graph.Deployment; attribute values carry
// their spec file and line as provenance (attr.FromSpec), so a plan and
// `why` can say where each input came from. Spec.Diagnostics turns the
// graph's own wiring errors and cycles into diagnostics at the role blocks.
//
// # References to role outputs
//
// mason wires inputs by Go types and attribute names. References in a
// spec become that wiring, and the loader checks that the graph will wire
// exactly what the reference says, turning a silent miswiring into a
// diagnostic at the reference:
//
//   - role.NAME.output.FIELD as a value in a role block's attrs, for the
//     attribute "a.b": Spec.Deployment has role NAME publish its output
//     FIELD as "a.b" (graph.Deployment.PublishOutput; nothing to add when
//     the field's `attr` tag already says "a.b"), so any output field
//     works, tagged or not. FIELD must have a type the input takes (the
//     same Go type, or one wrapped in or unwrapped from attr.Secret), NAME
//     must be a role the consumer can see (a node role's output reaches
//     only roles on the same node; cluster and service roles reach every
//     node), and no other output may be published as "a.b" where the
//     consumer's nodes see it. The graph makes the edge, delivers the
//     typed value with the provenance "output of NAME on NODE" when the
//     producer has run, and re-runs the consumer when that value changes.
//   - role.NAME.outputs (every node's output) or role.NAME.output (one) in
//     a role block's inputs map, for role.All, role.One and role.Same
//     fields: role NAME must produce the field's type, and be the only
//     bound role that does unless the field is tagged `role:"NAME"`.
//
// A reference may name a role block declared anywhere in the spec's files,
// before or after the block that makes it. The loader checks references
// with the graph's own wiring rule (role.Input.Resolve) applied to the
// node-roles the spec makes, so what it accepts the graph wires to the
// output the reference names. Such references become graph edges, show in
// `why`, and take part in the loader's cycle check. Computing with an output (format, join) is refused
// with a diagnostic: the value is not known while planning.
//
// # Variables and functions
//
// Variables take their values, in rising precedence, from their default,
// the environment (MASON_VAR_name), variable files and -var flags; types
// are checked (Terraform's type expressions: string, number, bool,
// list(string), map(number), object({...})) and validation blocks run.
// Expressions may call cty's standard functions under Terraform's names
// (format, join, split, lower, concat, merge, range, ...) and cidrhost,
// cidrsubnet and cidrnetmask.
package spec
