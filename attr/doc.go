// Package attr holds mason's typed attributes: the named, typed values that
// flow into and out of roles.
//
// A [Key] declares an attribute once, in Go, with its type, a dotted name, a
// doc string, and optionally a default, a validation function and a secret
// marker:
//
//	var ClusterToken = attr.New[string]("etcd.cluster_token").
//		WithDoc("shared token that keeps etcd clusters apart").
//		WithDefault("mason")
//
// [Values] holds attribute values in layers — default < deployment < node <
// role output < explicit override — and every value remembers its [Source]:
// the key's default, a spec file and line, the output of role R on node N, a
// service. [Values.Explain] answers "where did this come from?".
//
// Values of a secret key, and values wrapped in [Secret], never print: not
// through String, any fmt verb, JSON or slog. The role that needs the value
// still receives it.
//
// [Digest] hashes values into a stable, order-independent, type-aware
// fingerprint; the graph compares digests to decide whether a node-role must
// run again. Its encoding is fixed (journals compare digests written by
// earlier versions), and compiled once per type: a digest reads the
// value's memory with the type's names and field layout already encoded,
// so its cost is mostly the SHA-256 itself.
package attr
