// Package claim lets several controllers share work through one store
// without ever doing the same piece twice at once: each controller holds a
// [Session] (one lease, renewed in the background), claims each unit of
// work (a node-role) under that lease before running it, and fences every
// write about that unit with the claim, so a controller that lost its claim
// cannot overwrite the new owner's records.
//
// When a controller dies, its lease expires after the session TTL, every
// claim it held is deleted with it, and the other controllers see the
// delete events and claim the work. When a controller is merely paused
// (a long GC, a stopped VM) past its TTL, [Session.Lost] is closed on its
// side as soon as its own clock says the lease may have expired, which is
// never later than the store expires it; it must stop its work then. Its
// journal writes fail with [ErrLost] even if it does not notice in time,
// because every fenced write checks the claim key's revision, and a new
// claim has a new revision.
//
// The package uses only the [store.Store] contract, so the same code runs
// on the embedded stores (one controller, or several in tests) and on
// store/etcd (several processes). Package graph uses it when
// graph.Options.Controller is set.
//
// Claims are stored at Prefix+id with the owner's name as value:
//
//	sess, _ := claim.NewSession(ctx, st, claim.Options{Prefix: "mason/graph/prod/claims/", Owner: "ctl-2 pid 4711", TTL: 3 * time.Second})
//	c, err := sess.Claim(ctx, "web-1/docker")   // *HeldError if another controller has it
//	_, err = c.Txn(ctx, store.PutOp(journalKey, rec)) // ErrLost once the claim is gone
//	c.Release(ctx)
package claim
