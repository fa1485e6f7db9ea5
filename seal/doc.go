// Package seal keeps secrets at rest under the application's
// key-encryption key (KEK): it seals values with AES-GCM, binds every
// ciphertext to where it is stored, computes keyed digests of secret
// values, and tells a wrong or missing key apart from a good one before
// anything is written with it.
//
// A [KEK] is loaded once, at start, from where an operator keeps it: a file
// only the controller's user may read ([LoadFile], [CreateFile]), an
// environment variable ([LoadEnv]), or either ([Load]). Errors name the
// file or variable and say what to do. A KEK never prints: String, fmt,
// slog and JSON show only its check value's short fingerprint ("key
// 3fa9c1"), which is safe to log and lets people tell two keys apart.
//
// [KEK.Seal] encrypts a value with a fresh random nonce; the associated
// data passed beside it (the store key the value is written at, the record
// it belongs to) is authenticated but not stored, so a sealed value copied
// to another key does not open there. [KEK.Open] fails with an error
// matching [ErrWrongKey] both for another key and for a value that was
// altered or moved. The sealed format is nonce (12 bytes) || ciphertext ||
// tag (16 bytes), AES with the KEK's size (16, 24 or 32 bytes: AES-128,
// -192 or -256).
//
// Check values: [KEK.CheckValue] is a short keyed value (not the key, and
// nothing the key can be computed from) that a state stores beside what it
// sealed; [Check] records it in a [store.Store] the first time and compares
// it every time after, so a run with the wrong key is refused before it
// writes anything sealed under that key next to values sealed under the
// right one.
//
// Keyed digests: a digest of a secret (a join token, a password) must not
// let anyone who reads the state test guesses against it. A [DigestKey] is
// a random per-deployment HMAC-SHA256 key, kept sealed in the state
// ([KEK.SealDigestKey], [KEK.OpenDigestKey]); [DigestKey.Sum] digests a
// value with it. Rotating the KEK re-seals the digest key only; every digest
// stays the same.
//
// Users: package pki seals certificate authorities' private keys; package
// graph seals journaled role outputs that hold an attr.Secret and keeps
// the deployment's digest key sealed (graph.Deployment.UseKEK). One key
// serves both. [KEK.Source] says where a key was loaded from, and errors
// about a wrong key name it.
package seal
