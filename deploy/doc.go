// Package deploy is what a program that applies a deployment does around
// the plan, written once for the command line (package cli) and for Go
// programs such as examples/etcd:
//
//   - Open checks the input before anything is created (names, node IDs,
//     the provider's capacity), and checks that the state belongs to the
//     deployment: a state that is empty, missing or of another deployment
//     while the provider still holds the deployment's nodes is refused with
//     a [*LostStateError] that says what was found and how to go on —
//     never taken for a fresh start over a live cluster. A state records
//     its deployment's identity the first time a run may change something.
//   - [Deployment.CreateNodes] creates the nodes the provider does not have
//     yet, under a lock in the state store, stamping each with the
//     deployment's identity.
//   - [Deployment.PlanRemovals] lets a graph plan remove the nodes the
//     deployment no longer wants: it names them as leaving (their
//     node-roles are undone on them) and deletes them from the provider
//     once that is done.
//   - [Held] and [ResumeHint] say which node-roles a plan holds (an
//     interrupted destructive role) and the exact command that resumes one.
//   - [Deployment.Destroy] removes what the deployment created: its nodes,
//     its records in the state (journal, claims, identity, locks) and, when
//     no other nodes are left in it, what the provider made for it (a lab's
//     bridge, firewall rule and directory).
//
// The caller opens the state store itself (a bbolt file holds its lock for
// as long as it is open, so open it before anything else) and passes it in.
//
//	st, _ := bolt.Open("/var/lib/app/state.db", nil)
//	d, err := deploy.Open(ctx, deploy.Options{Name: "etcd", Store: st, Where: "state file /var/lib/app/state.db",
//		Provider: p, Nodes: specs, Writes: true})
//	if err != nil {
//		return err // *deploy.LostStateError: restore the file, or destroy
//	}
//	nodes, err := d.CreateNodes(ctx, nil)
//
// With Options.Key set, Open loads the deployment's key-encryption key and
// checks it against the state; [Deployment.KEK] returns it, for the
// graph's journal (graph.Deployment.UseKEK, which seals role outputs that
// hold secrets) and for a pki.Manager alike.
package deploy
