package etcd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Operator issues the operator's client certificate and writes it to a
// directory on the controller (etcd.operator_dir), for etcdctl and for
// programs. It is a service-scope role: it touches no node.
type Operator struct{}

// OperatorIn waits for the authority.
type OperatorIn struct {
	CA     role.One[CAOut]
	Dir    string `attr:"etcd.operator_dir"`
	Issuer role.Uses[pki.Issuer]
}

// OperatorOut says where the files are. The key stays in its file.
type OperatorOut struct {
	CertFile string
	KeyFile  string
	CAFile   string
	Serial   string
}

// OperatorName is the operator certificate's common name.
const OperatorName = "operator"

// Meta implements role.Role.
func (Operator) Meta() role.Meta {
	return role.Meta{Name: "etcd-operator-cert", Version: "1", Scope: role.ScopeService,
		Doc: "issues the operator's client certificate"}
}

// Run implements role.Role.
func (Operator) Run(ctx context.Context, rc *role.Context, in OperatorIn) (OperatorOut, error) {
	b, err := in.Issuer.Value.Issue(ctx, Service, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: OperatorName}})
	if err != nil {
		return OperatorOut{}, fmt.Errorf("operator certificate: %w", err)
	}
	out := OperatorOut{
		CertFile: filepath.Join(in.Dir, "operator.crt"),
		KeyFile:  filepath.Join(in.Dir, "operator.key"),
		CAFile:   filepath.Join(in.Dir, "ca.crt"),
		Serial:   b.Serial,
	}
	if err := os.MkdirAll(in.Dir, 0o700); err != nil {
		return OperatorOut{}, err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{out.CertFile, b.CertPEM, 0o644}, {out.KeyFile, b.KeyPEM.Reveal(), 0o600}, {out.CAFile, b.CAPEM, 0o644}} {
		if err := deploy.WriteFile(f.path, f.data, f.mode); err != nil {
			return OperatorOut{}, err
		}
	}
	return out, nil
}

// Check reports drift when a file is gone.
func (Operator) Check(_ context.Context, _ *role.Context, _ OperatorIn, last OperatorOut) (string, error) {
	for _, p := range []string{last.CertFile, last.KeyFile, last.CAFile} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing", nil
		}
	}
	return "", nil
}
