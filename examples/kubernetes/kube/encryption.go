package kube

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
)

// EncryptionKey generates the key the API servers encrypt secrets with in
// etcd. It is destructive: once made, mason never makes another on its own
// (a new key would leave every stored secret unreadable).
type EncryptionKey struct{}

// EncryptionKeyOut holds the key. It is an attr.Secret: no log, plan or
// error shows it.
type EncryptionKeyOut struct {
	Name string
	Key  attr.Secret[[]byte]
}

// Meta implements role.Role.
func (EncryptionKey) Meta() role.Meta {
	return role.Meta{Name: "kube-encryption-key", Version: "1", Scope: role.ScopeService, Destructive: true,
		Doc: "generates the aescbc key that encrypts secrets at rest"}
}

// Run implements role.Role.
func (EncryptionKey) Run(context.Context, *role.Context, struct{}) (EncryptionKeyOut, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return EncryptionKeyOut{}, err
	}
	return EncryptionKeyOut{Name: "key1", Key: attr.Conceal(k)}, nil
}

// encryptionConfig is /var/lib/kubernetes/encryption-config.yaml: secrets
// are written with aescbc and read with aescbc or, for anything stored
// before, identity.
func encryptionConfig(k EncryptionKeyOut) []byte {
	return fmt.Appendf(nil, `kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources:
      - secrets
    providers:
      - aescbc:
          keys:
            - name: %s
              secret: %s
      - identity: {}
`, k.Name, base64.StdEncoding.EncodeToString(k.Key.Reveal()))
}
