// Package pki gives every service its own certificate authority and issues
// certificates bound to the identity of the node or user that holds them.
//
// A [Manager] keeps one [Authority] per named service ("etcd",
// "kube-apiserver", "swarm-lb") in a [store.Store]. An authority is a root,
// optionally with an intermediate that signs the leaves, and optionally
// name-constrained to the deployment's DNS domains and IP networks. Its
// private keys are sealed (package seal: AES-GCM, bound to the store key
// each lives at) under the key-encryption key the application supplies
// ([Options.Key]); without that key a persisted authority refuses to load.
// The Manager records the key's check value in the store (at
// Prefix+"key-check") and refuses another key before it creates or loads
// anything, so a store never holds authorities sealed under two keys.
//
// Issuance is bound to identity: a [Request] names a [Kind] (a [Server]
// certificate for a node's exact DNS names and IPs, a [Client] certificate
// whose CN/O are a user and its groups, or a [Peer] certificate with both
// usages, as etcd members need) and an [Identity]. Wildcards, malformed
// names and names or addresses outside the authority's constraints are
// refused with a [*RequestError] before anything is signed. Issuing the same
// request twice returns the same certificate until it is due for renewal, so
// re-running a converged deployment changes nothing; [Authority.Renew]
// replaces a leaf with a new key for the same identity. An identity's
// certificate is stored under its Name (the CN), or under [Identity.ID]
// when several holders present the same CN — each Kubernetes API server's
// is CN "kubernetes" — so each keeps its own.
//
// Rotation and revocation: [Authority.RotateRoot] creates a new root and
// keeps the old one trusted for an overlap window; [Authority.Revoke] adds a
// serial to the authority's revocation list and publishes a signed CRL
// ([Authority.CRL]); [Authority.Verify] and the package-level [VerifyPEM]
// check chains and the CRL.
//
// Mutual TLS: [Authority.ServerConfig] returns a tls.Config that requires a
// client certificate from the service's current roots and rejects revoked
// ones; [Authority.ClientConfig] pins the service's roots and checks the
// server's name. Both serve their own certificate through a [Reloader], so a
// renewed certificate takes effect on the next handshake without restarting
// the listener, and both follow root rotation and revocation as they
// happen; [Authority.Keep] feeds a Reloader renewed certificates by itself.
//
// Roles ask for certificates mid-workflow through the [Issuer] interface
// (which [*Manager] implements) and hand the resulting [Bundle] on as an
// output; [Bundle.Install] writes it to a node through a
// provider.Transport, the key with mode 0600.
//
// Secrets: private keys are carried in an attr.Secret, so String, fmt, slog
// and JSON never show them, and no error or log line of this package
// contains key material.
//
// Concurrency: several controllers may share one store. Authority creation,
// issuance, root rotation and revocation are compare-and-swap transactions,
// so concurrent writers never overwrite each other; [Authority.Refresh]
// picks up what other controllers changed, and [Authority.Follow] keeps
// watching the store so their rotations and revocations reach running
// listeners.
package pki
