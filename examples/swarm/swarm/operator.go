package swarm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Operator issues the operator's client certificate from the "docker"
// authority and writes it where the docker CLI looks for it
// (DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem), on the controller. A
// service-scope role: it touches no node.
type Operator struct{}

// OperatorIn waits for the authority.
type OperatorIn struct {
	CA     role.One[CAOut]
	Dir    string `attr:"swarm.operator_dir"`
	Issuer role.Uses[pki.Issuer]
}

// OperatorOut says where the files are. The key stays in its file.
type OperatorOut struct {
	Dir    string
	Serial string
}

// OperatorName is the operator certificate's common name.
const OperatorName = "operator"

// Meta implements role.Role.
func (Operator) Meta() role.Meta {
	return role.Meta{Name: "swarm-operator-cert", Version: "1", Scope: role.ScopeService,
		Doc: "writes the operator's docker client certificate (DOCKER_CERT_PATH)"}
}

// Run implements role.Role.
func (Operator) Run(ctx context.Context, rc *role.Context, in OperatorIn) (OperatorOut, error) {
	b, err := in.Issuer.Value.Issue(ctx, DockerCA, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: OperatorName}})
	if err != nil {
		return OperatorOut{}, fmt.Errorf("operator certificate: %w", err)
	}
	if err := os.MkdirAll(in.Dir, 0o700); err != nil {
		return OperatorOut{}, err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"cert.pem", b.CertPEM, 0o644}, {"key.pem", b.KeyPEM.Reveal(), 0o600}, {"ca.pem", b.CAPEM, 0o644}} {
		if err := deploy.WriteFile(filepath.Join(in.Dir, f.name), f.data, f.mode); err != nil {
			return OperatorOut{}, err
		}
	}
	return OperatorOut{Dir: in.Dir, Serial: b.Serial}, nil
}

// Check reports drift when a file is gone.
func (Operator) Check(_ context.Context, _ *role.Context, _ OperatorIn, last OperatorOut) (string, error) {
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		if _, err := os.Stat(filepath.Join(last.Dir, f)); err != nil {
			return filepath.Join(last.Dir, f) + " is missing", nil
		}
	}
	return "", nil
}
