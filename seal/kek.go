package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// Errors callers branch on (wrapped, so test with errors.Is).
var (
	// ErrWrongKey: a sealed value does not open with this key, or the key
	// does not match the check value a state recorded. The value was sealed
	// under another key, or was altered or moved to another place.
	ErrWrongKey = errors.New("seal: wrong key-encryption key")
	// ErrNoKey: no key where one was looked for (a missing file, an unset
	// environment variable).
	ErrNoKey = errors.New("seal: no key-encryption key")
	// ErrBadKey: a key that cannot be used: the wrong length, an encoding
	// that is neither raw bytes, hex nor base64, or a key file other users
	// can read.
	ErrBadKey = errors.New("seal: unusable key-encryption key")
)

// NonceSize and Overhead are the sizes the sealed format adds to a value:
// a sealed value is NonceSize+len(plaintext)+Overhead bytes long.
const (
	NonceSize = 12
	Overhead  = 16
)

// checkLabel is what the check value is a MAC of; the version in it lets a
// later format use another label without ever matching this one.
const checkLabel = "mason/seal/v1 key check value"

// CheckSize is the length of a check value.
const CheckSize = 16

// KEK is a key-encryption key. Its methods are safe for concurrent use.
// The key bytes never leave it: printing, logging or encoding a KEK shows
// only its fingerprint.
type KEK struct {
	aead  cipher.AEAD
	check [CheckSize]byte
	from  string // where it was loaded from, for errors: "key file /x/kek"
}

// New returns the KEK of key, which must be 16, 24 or 32 random bytes
// (AES-128, -192 or -256; use 32). New keeps no reference to key.
func New(key []byte) (*KEK, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: a key-encryption key must be 16, 24 or 32 bytes (AES-128/192/256), got %d bytes; generate one with crypto/rand (or seal.CreateFile) and keep it outside the state", ErrBadKey, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	k := &KEK{aead: g}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(checkLabel))
	copy(k.check[:], m.Sum(nil))
	return k, nil
}

// Generate returns a new random 32-byte KEK. To keep it, use CreateFile
// instead: a KEK cannot be exported.
func Generate() (*KEK, error) {
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return New(key)
}

func randomKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("seal: generating a key: %w", err)
	}
	return key, nil
}

// Seal encrypts plaintext and authenticates it together with ad, the
// associated data: where the value lives (its store key, its record). The
// same ad must be given to Open. The result is NonceSize+len(plaintext)+
// Overhead bytes; a fresh random nonce makes every result different.
func (k *KEK) Seal(plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, NonceSize, NonceSize+len(plaintext)+Overhead)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("seal: drawing a nonce: %w", err)
	}
	return k.aead.Seal(out, out, plaintext, ad), nil
}

// Open decrypts what Seal returned for the same ad. It fails with an error
// matching ErrWrongKey when sealed was made under another key, was altered
// or truncated, or was sealed with other associated data (moved from
// elsewhere). The error names neither the key nor the plaintext.
func (k *KEK) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+Overhead {
		return nil, fmt.Errorf("%w: sealed value is truncated (%d bytes, at least %d expected)", ErrWrongKey, len(sealed), NonceSize+Overhead)
	}
	plain, err := k.aead.Open(nil, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: the value does not open with %s (it was sealed under another key, or altered, or moved from another place)", ErrWrongKey, k.described())
	}
	return plain, nil
}

// CheckValue returns the key's check value: CheckSize bytes that identify
// the key without revealing it (an HMAC-SHA256 of a fixed label under the
// key). Store it with what the key sealed; Verify compares against it.
func (k *KEK) CheckValue() []byte { return append([]byte(nil), k.check[:]...) }

// Verify reports whether check is this key's check value. A mismatch is a
// *MismatchError, which matches ErrWrongKey.
func (k *KEK) Verify(check []byte) error {
	if hmac.Equal(check, k.check[:]) {
		return nil
	}
	return &MismatchError{Want: fingerprint(check), Have: k.Fingerprint(), Source: k.from}
}

// Source says where the key was loaded from — "key file /var/lib/app/kek",
// "environment variable APP_KEK" — or "" for a key made by New, Parse or
// Generate. Errors about the key name it, so that an operator knows which
// file to replace.
func (k *KEK) Source() string { return k.from }

// described is the key's fingerprint and, when known, its source.
func (k *KEK) described() string {
	if k.from == "" {
		return k.String()
	}
	return k.String() + " from " + k.from
}

// Fingerprint is a short, loggable name of the key: the first six hex
// digits of its check value.
func (k *KEK) Fingerprint() string { return fingerprint(k.check[:]) }

func fingerprint(check []byte) string {
	if len(check) < 3 {
		return hex.EncodeToString(check)
	}
	return hex.EncodeToString(check[:3])
}

// String names the key by its fingerprint only. It and the other
// printing methods have value receivers so that a KEK printed by value
// hides its key too.
func (k KEK) String() string { return "key " + fingerprint(k.check[:]) }

// GoString is String: %#v must not print the key either.
func (k KEK) GoString() string { return "seal.KEK(" + k.String() + ")" }

// LogValue implements slog.LogValuer: the fingerprint only.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText implements encoding.TextMarshaler with the fingerprint, so
// JSON and other encoders never see the key.
func (k KEK) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// MismatchError reports a key that is not the one a state was sealed
// with. It matches ErrWrongKey.
type MismatchError struct {
	// Where names the check value's place (a store key), when known.
	Where string
	// Want is the fingerprint of the key the state was sealed with; Have
	// the fingerprint of the key given.
	Want, Have string
	// Source is where the key given was loaded from (KEK.Source), if known.
	Source string
}

// Error implements the error interface.
func (e *MismatchError) Error() string {
	at := ""
	if e.Where != "" {
		at = " recorded at " + e.Where
	}
	from := ""
	if e.Source != "" {
		from = " from " + e.Source
	}
	return fmt.Sprintf("seal: the key-encryption key given (key %s%s) is not the one the state was sealed with (key %s%s); supply the key the state was created with", e.Have, from, e.Want, at)
}

// Is makes errors.Is(err, ErrWrongKey) true.
func (e *MismatchError) Is(target error) bool { return target == ErrWrongKey }
