package pki

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// ErrKEKRequired is returned when a persisted authority is opened by a
// Manager that has no key-encryption key. It matches seal.ErrNoKey.
var ErrKEKRequired = fmt.Errorf("pki: a key-encryption key is required (%w)", seal.ErrNoKey)

// ErrWrongKEK is returned when a sealed private key does not open with the
// Manager's key-encryption key, or the key is not the one the store's
// authorities were sealed with: the key differs from the one the
// authorities were created with, or the stored record was tampered with.
// It matches seal.ErrWrongKey.
var ErrWrongKEK = fmt.Errorf("pki: private key does not decrypt with this key-encryption key (%w)", seal.ErrWrongKey)

// Private keys are sealed with package seal: AES-GCM under the KEK, with
// the store key a sealed key lives at as associated data, so a sealed key
// copied to another service's record does not open there. The format
// (nonce || ciphertext || tag) is the one this package wrote before it
// used package seal, so existing states open unchanged.

func (a *Authority) sealKey(k crypto.Signer, where string) ([]byte, error) {
	if a.m.kek == nil {
		return nil, fmt.Errorf("pki: authority %q: %w (Options.Key) to store private keys", a.service, ErrKEKRequired)
	}
	der, err := marshalKey(k)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	b, err := a.m.kek.Seal(der, []byte(where))
	if err != nil {
		return nil, fmt.Errorf("pki: sealing key for %s: %w", where, err)
	}
	return b, nil
}

func (a *Authority) openKey(sealed []byte, where string) (crypto.Signer, error) {
	if a.m.kek == nil {
		return nil, fmt.Errorf("pki: authority %q is persisted with sealed private keys: %w (Options.Key, the key it was created with)", a.service, ErrKEKRequired)
	}
	der, err := a.m.openSealed(sealed, where)
	if err != nil {
		return nil, fmt.Errorf("pki: authority %q: %w", a.service, err)
	}
	defer clear(der)
	return parseKey(der)
}

// openSealed opens a sealed private key with the Manager's KEK, which
// must be set.
func (m *Manager) openSealed(sealed []byte, where string) ([]byte, error) {
	if len(sealed) < seal.NonceSize+seal.Overhead {
		return nil, fmt.Errorf("sealed key at %s is truncated: %w", where, ErrWrongKEK)
	}
	der, err := m.kek.Open(sealed, []byte(where))
	if err != nil {
		return nil, fmt.Errorf("opening sealed key at %s with %s: %w (supply the key-encryption key the authority was created with)", where, m.kek, ErrWrongKEK)
	}
	return der, nil
}

// checkKeyName is where the Manager records its KEK's check value.
// Service names cannot collide with it: their keys all have a "/".
func (m *Manager) checkKeyName() string { return m.prefix + "key-check" }

// checkKey makes sure, once per Manager, that its KEK is the one the
// store's authorities were sealed with, before anything is created or
// loaded: a wrong key must not seal a new authority beside the others.
// A store written before check values existed has none: the key is then
// proved on a sealed root key the store holds, and its check value
// recorded. Without a KEK there is nothing to check (loading fails with
// ErrKEKRequired when a key is needed).
func (m *Manager) checkKey(ctx context.Context) error {
	if m.kek == nil {
		return nil
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if m.keyChecked {
		return nil
	}
	name := m.checkKeyName()
	if _, err := m.st.Get(ctx, name); errors.Is(err, store.ErrNotFound) {
		if err := m.proveKey(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("pki: reading the key check value at %s: %w", name, err)
	}
	if _, err := seal.Check(ctx, m.st, name, m.kek); err != nil {
		var me *seal.MismatchError
		if errors.As(err, &me) {
			return fmt.Errorf("pki: the key-encryption key given (key %s) is not the one the authorities under %s were sealed with (key %s, check value at %s): %w; supply the key-encryption key the authority was created with",
				me.Have, m.prefix, me.Want, name, ErrWrongKEK)
		}
		return fmt.Errorf("pki: %w", err)
	}
	m.keyChecked = true
	return nil
}

// proveKey opens the current root key of one authority the store holds,
// if any, with the Manager's KEK.
func (m *Manager) proveKey(ctx context.Context) error {
	ents, _, err := m.st.List(ctx, m.prefix)
	if err != nil {
		return fmt.Errorf("pki: looking for existing authorities under %s: %w", m.prefix, err)
	}
	for _, e := range ents {
		rest := strings.TrimPrefix(e.Key, m.prefix)
		service, ok := strings.CutSuffix(rest, "/authority")
		if !ok || strings.Contains(service, "/") {
			continue
		}
		var rec authorityRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil || len(rec.Generations) == 0 {
			continue // Refresh reports a broken record with its own error
		}
		g := rec.Generations[len(rec.Generations)-1]
		der, err := m.openSealed(g.RootKey, m.prefix+service+"/gen/"+fmt.Sprint(g.Gen)+"/root")
		if err != nil {
			return fmt.Errorf("pki: authority %q: %w", service, err)
		}
		clear(der)
		return nil
	}
	return nil
}
