package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// Algorithm is a key algorithm for authorities and leaves. The zero value
// means "the default": ECDSA P-256 for an authority, the authority's own
// algorithm for its leaves.
type Algorithm int

// Key algorithms.
const (
	ECDSAP256 Algorithm = iota + 1
	Ed25519
	RSA2048
	RSA3072
	RSA4096
)

// name returns the algorithm's name, or "" for an unknown one.
func (a Algorithm) name() string {
	switch a {
	case ECDSAP256:
		return "ecdsa-p256"
	case Ed25519:
		return "ed25519"
	case RSA2048:
		return "rsa-2048"
	case RSA3072:
		return "rsa-3072"
	case RSA4096:
		return "rsa-4096"
	}
	return ""
}

// String returns the algorithm's name, e.g. "ecdsa-p256".
func (a Algorithm) String() string {
	if a == 0 {
		return "default"
	}
	if n := a.name(); n != "" {
		return n
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a Algorithm) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Algorithm) UnmarshalText(b []byte) error {
	if string(b) == "default" || len(b) == 0 {
		*a = 0
		return nil
	}
	for k := ECDSAP256; k <= RSA4096; k++ {
		if k.name() == string(b) {
			*a = k
			return nil
		}
	}
	return fmt.Errorf("pki: unknown key algorithm %q (want one of ecdsa-p256, ed25519, rsa-2048, rsa-3072, rsa-4096)", b)
}

func (a Algorithm) valid() bool { return a.name() != "" }

// generate creates a new private key.
func (a Algorithm) generate() (crypto.Signer, error) {
	switch a {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("pki: unknown key algorithm %v", a)
}

// marshalKey encodes a private key as PKCS#8 DER.
func marshalKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		// The error names only the key type, never key material.
		return nil, fmt.Errorf("pki: encoding private key: %w", err)
	}
	return der, nil
}

// parseKey decodes a PKCS#8 DER private key.
func parseKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("pki: decoding private key: malformed PKCS#8")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: decoding private key: %T cannot sign", k)
	}
	return s, nil
}

func keyPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
