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

var algorithmNames = map[Algorithm]string{
	ECDSAP256: "ecdsa-p256",
	Ed25519:   "ed25519",
	RSA2048:   "rsa-2048",
	RSA3072:   "rsa-3072",
	RSA4096:   "rsa-4096",
}

// String returns the algorithm's name, e.g. "ecdsa-p256".
func (a Algorithm) String() string {
	if a == 0 {
		return "default"
	}
	if n, ok := algorithmNames[a]; ok {
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
	for k, n := range algorithmNames {
		if n == string(b) {
			*a = k
			return nil
		}
	}
	return fmt.Errorf("pki: unknown key algorithm %q (want one of ecdsa-p256, ed25519, rsa-2048, rsa-3072, rsa-4096)", b)
}

func (a Algorithm) valid() bool { _, ok := algorithmNames[a]; return ok }

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

// algorithmOf names the algorithm of a public key.
func algorithmOf(pub crypto.PublicKey) Algorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return ECDSAP256
		}
	case ed25519.PublicKey:
		return Ed25519
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	}
	return 0
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
