package seal

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"log/slog"
)

// DigestSize is the length of a keyed digest.
const DigestSize = sha256.Size

// digestKeySize is the length of a digest key: as long as the digest.
const digestKeySize = 32

// DigestKey computes keyed digests (HMAC-SHA256) of secret values, so that
// a digest kept in the state (to tell whether an input changed) does not
// let anyone who reads the state test guesses of a low-entropy secret.
// Make one per deployment with NewDigestKey and keep it sealed in the
// state (KEK.SealDigestKey). Like a KEK it never prints.
type DigestKey struct {
	key [digestKeySize]byte
}

// NewDigestKey returns a new random digest key.
func NewDigestKey() (*DigestKey, error) {
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	d := &DigestKey{}
	copy(d.key[:], key)
	return d, nil
}

// Sum returns the keyed digest of the concatenation of parts. Give it the
// same canonical bytes a plain digest would hash.
func (d *DigestKey) Sum(parts ...[]byte) [DigestSize]byte {
	m := hmac.New(sha256.New, d.key[:])
	for _, p := range parts {
		m.Write(p)
	}
	var out [DigestSize]byte
	m.Sum(out[:0])
	return out
}

// Hash returns a new keyed hash.Hash, for digests written incrementally.
func (d *DigestKey) Hash() hash.Hash { return hmac.New(sha256.New, d.key[:]) }

// String hides the key.
func (DigestKey) String() string { return "seal.DigestKey(redacted)" }

// GoString hides the key.
func (DigestKey) GoString() string { return "seal.DigestKey(redacted)" }

// LogValue hides the key.
func (DigestKey) LogValue() slog.Value { return slog.StringValue("redacted") }

// MarshalText hides the key from encoders.
func (DigestKey) MarshalText() ([]byte, error) { return []byte("redacted"), nil }

// SealDigestKey seals d under k for storing at the place ad names.
func (k *KEK) SealDigestKey(d *DigestKey, ad []byte) ([]byte, error) {
	return k.Seal(d.key[:], ad)
}

// OpenDigestKey opens a digest key sealed by SealDigestKey with the same
// ad. Errors match ErrWrongKey as Open's do.
func (k *KEK) OpenDigestKey(sealed, ad []byte) (*DigestKey, error) {
	b, err := k.Open(sealed, ad)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if len(b) != digestKeySize {
		return nil, fmt.Errorf("%w: sealed digest key has %d bytes, want %d (the value at that place is not a digest key)", ErrBadKey, len(b), digestKeySize)
	}
	d := &DigestKey{}
	copy(d.key[:], b)
	return d, nil
}
