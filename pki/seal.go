package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrKEKRequired is returned when a persisted authority is opened by a
// Manager that has no key-encryption key.
var ErrKEKRequired = errors.New("pki: a key-encryption key is required")

// ErrWrongKEK is returned when a sealed private key does not open with the
// Manager's key-encryption key: the key differs from the one the authority
// was created with, or the stored record was tampered with.
var ErrWrongKEK = errors.New("pki: private key does not decrypt with this key-encryption key")

// sealer encrypts private keys at rest with AES-GCM. The associated data
// binds each ciphertext to the store key it lives at, so a sealed key copied
// to another service's record does not open there.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(kek []byte) (*sealer, error) {
	switch len(kek) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("pki: key-encryption key must be 16, 24 or 32 bytes (AES-128/192/256), got %d bytes; generate one with crypto/rand and keep it outside the store", len(kek))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("pki: key-encryption key: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("pki: key-encryption key: %w", err)
	}
	return &sealer{aead: g}, nil
}

func (s *sealer) seal(plain []byte, where string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("pki: sealing key for %s: %w", where, err)
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(where)), nil
}

func (s *sealer) open(sealed []byte, where string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("pki: sealed key at %s is truncated: %w", where, ErrWrongKEK)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(where))
	if err != nil {
		return nil, fmt.Errorf("pki: opening sealed key at %s: %w (supply the key-encryption key the authority was created with)", where, ErrWrongKEK)
	}
	return plain, nil
}
