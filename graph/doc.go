// Package graph turns a deployment into a graph of node-roles, decides what
// must run and why, and runs it.
//
// A [Deployment] names nodes (grouped into pools), binds roles to them and
// sets attribute values. [NewPlan] expands it into node-roles — a role
// bound to a node, "etcd-member@n1", or to the deployment — with an edge
// wherever one node-role waits for another: a role it requires
// (role.Meta.Requires), an output it consumes on the same node
// (role.Same), the single output of its kind (role.One), every peer's
// output (role.All: an aggregate waits for every member) or an attribute
// another role publishes. Wiring mistakes and cycles fail here, naming the
// role, the node and the field, or spelling out the cycle
// ("a@n1 → b@n1 → a@n1").
//
// A role publishes an output field as an attribute when the field is
// tagged `attr:"name"`; [Deployment.PublishOutput] publishes any output
// field under any attribute name without touching the role's code, which
// is how spec references (role.swarm-manager.output.worker_token) wire an
// output into an input of another name. Either way the consumer waits
// for the producer — on its own node if one publishes it there, otherwise
// a cluster or service role's output reaches every node — receives the
// typed value with the provenance "output of ROLE on NODE", and runs
// again when that value changes. The field's type is checked against the
// consumer's at plan time.
//
// The plan reads the deployment's journal from a [store.Store] and says
// for every node-role whether it runs and why: new, an input changed (and
// which: "input Peers changed: +n4"), the role's version changed, its last
// run failed, forced, or drifted (a role's optional Check, run for
// converged node-roles at plan time). Otherwise it is converged and
// skipped. Inputs that depend on outputs produced during the run are known
// only then; such node-roles run only if their inputs turn out to have
// changed, so adding a node re-runs exactly the peers whose aggregate
// input changed. One function makes that decision — when planning, when
// a run-if-changed node-role's inputs become known, and when a controller
// claims a node-role another may have run — and says why with a
// [ReasonKind] ([Step.Why], [Outcome.Why], [Event.Why]): branch on the
// kind; the Reason text is rendered from it for people.
//
// Wiring follows one rule, [role.Input.Resolve], which the plan, the
// binding of inputs and the spec loader share. A service a role declares
// as a [role.Uses] input is looked up when the plan is made, in the
// services of [Deployment.UseServices] and then in the node's Transport;
// a missing one fails the plan.
//
// [Apply] runs a plan: bounded parallelism, one node-role per node at a
// time by default, ready node-roles ordered by their longest remaining
// critical path (estimated from the journal's last durations), retries with
// exponential backoff per the role's policy (backoff.Permanent errors fail
// at once). A failure blocks what waits for it ("blocked by x@n1: ...")
// while independent branches go on. A role's [Rollout] policy adds a
// breaker (stop the rollout after too many failures, with a
// [BreakerError]) and batches (each must pass before the next starts).
// (Package breaker, beside graph, holds the classic
// closed/open/half-open breaker for calls to flaky APIs, for providers
// and services.)
//
// # Aggregates are shared
//
// "Every node reads every peer" (etcd's member list, each worker's routes
// to every other worker's pod subnet, a load balancer's backends) is the
// commonest wiring, and it must not cost N copies of N peers. Every
// role.All input of one output type (and role tag) is one aggregate per
// plan: its producers are resolved once, its value is gathered and
// digested once per plan and once per apply, and every consumer receives
// the same slice (role.Env.Shared) — roles must treat it as read-only.
// Consumers wait on the aggregate as one vertex of the schedule (N edges,
// not N²). A consumer's journal record refers to the peer set (node and
// role names, journaled once under mason/graph/<deployment>/peers/) by
// digest instead of holding its own copy; sets no record refers to any
// more are deleted after an Apply. The plan diffs the peer sets once per
// aggregate, so reasons stay exact ("input Peers changed: +n5"). An
// aggregate of outputs that hold secrets is digested with the deployment's digest key
// like any secret input (see Secrets). BenchmarkAllPeers measures the
// shape at 2,000 and 10,000 nodes on bbolt.
//
// # Removing nodes
//
// A node that leaves the deployment — dropped from its pools, while the
// journal still knows node-roles on it, or named by [Deployment.Leaving]
// because it still exists — is planned as a [Removal] ([Plan.Removals]),
// with the typed reason [ReasonNodeLeft] ("node web-4 left the
// deployment"), and a plan with a removal is never [Plan.Converged].
// [Apply] removes such nodes first, one at a time: it runs the Undo of
// each of the node's node-roles whose role implements [role.Undoer], in
// reverse dependency order, with the output of its last run (a member
// leaves its cluster before its certificate goes), then has the node
// deleted by the [NodeDeleter] the application gives
// ([Deployment.DeleteNodesWith]; package deploy's does it for a
// provider's nodes), then forgets it. Node-roles without an Undo are only
// forgotten. Only then does the rest of the plan run, so the peers whose
// aggregate inputs lost the node ("input Peers changed: -web-4") run
// against a cluster without it.
//
// A removal is journaled like any step: each undo's record says it is
// running, a removal mark keeps the node known until it is deleted, so a
// crash mid-removal is resumed by the next plan (undos must be
// idempotent; those that finished are not run again). An undo that fails
// — after its role's retries — stops the removal: the node is not
// deleted, nothing else runs, the error is a [*RemovalError] naming the
// node-role, and the next plan says why the node is still there.
// [ForceRemove] removes a node that is already gone: its undos still run
// (those that reach the rest of the cluster may succeed) but their
// failures no longer stop it.
//
// # Journal and crashes
//
// Every transition (pending, running, retrying, succeeded, failed,
// blocked, skipped) is journaled under mason/graph/<deployment>/nr/ in the
// store, with the attempt, the input digest, the output (gob-encoded; sealed
// when it holds a secret, see below) and timings. Records are
// group-committed: one writer batches whatever is queued into one store
// transaction, in order, so a crash loses only a suffix of the most recent
// records. A node-role the journal has never seen gets no pending record:
// its first is written when it starts or is blocked, and until then the
// journal has nothing for it (a status display shows it as never run). Two
// rules bound what the lost suffix can hold:
//
//   - a node-role's dependents start only after its "succeeded" record
//     (with its output) is durable, so no step ever consumes an output a
//     crash could lose;
//   - a destructive role starts only after its "running" record is
//     durable, so a crash mid-run is always seen.
//
// So a crash costs at most re-running idempotent node-roles whose success
// was not yet durable (nothing downstream had seen their output), and a
// new plan on the same store resumes: converged node-roles are skipped,
// interrupted ones run again — destructive ones are held until forced
// (a role declaring Meta.Once is never re-run after it succeeded, but an
// interrupted run of it simply runs again: it touched nothing yet).
//
// # Secrets
//
// The journal keeps no secret in plain text. An output that holds an
// [attr.Secret] (in a field, an element, behind a pointer, or in an
// interface value at run time) is sealed with package seal under the
// deployment's key-encryption key ([Deployment.UseKEK]) and bound to its
// record's store key; the consumer still receives the value, from memory
// or from the journal. Digests of inputs that hold secrets — including
// attributes set as secrets, or declared with AsSecret, that a plain field
// takes — are keyed: HMAC-SHA256 under a random digest key of the
// deployment's, kept sealed at mason/graph/<deployment>/keys beside the
// key's check value and created with the journal's first write.
//
// [NewPlan] refuses a deployment with secrets and no key (a [*NoKEKError],
// matching seal.ErrNoKey), and a key other than the one its journal was
// sealed with (matching seal.ErrWrongKey, naming the key's source), before
// anything runs or is written. The rest of every record stays readable:
// [ReadJournal] needs no key and marks sealed outputs.
//
// Records are written in format 2. Journals written in format 1, before
// sealing, are read; with the key, their plain digests of secret inputs
// are keyed in memory (the keyed digest is a MAC of the plain one, so
// nothing re-runs) and the next Apply, which writes a record for every
// node-role, rewrites them sealed.
//
// # Events
//
// Every transition is an [Event] sent to a [Subscriber] (modelled on
// slog.Handler); [LogSubscriber] and [JSONLines] are provided, and
// package progress draws them for people (a live area on a terminal,
// lines in a log). [WriteDOT] draws a plan, or its result, for Graphviz.
//
// # Several controllers
//
// With [Options.Controller] set, several processes may apply one
// deployment at once through one shared store (store/etcd): each claims a
// node-role under a lease (package store/claim) before running it, sets
// aside node-roles another controller holds and adopts their results from
// the journal, and fences every journal record with its claim, in
// transactions that fit etcd's limits. A dead controller's node-roles are
// taken over when its lease expires. Without it, one deployment must be
// applied by one process at a time.
package graph
