package kube

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Admin writes the admin kubeconfig on the controller
// (kubernetes.admin_dir/admin.kubeconfig), for the operator's kubectl, with
// a certificate of the operator's own (not the one the control-plane
// nodes' admin kubeconfigs hold).
//
// It names the load balancer by address, not by its DNS name as the nodes'
// kubeconfigs do: the controller's resolver does not serve the
// deployment's zone, and the address is in every API server's
// certificate, so `kubectl --kubeconfig admin.kubeconfig` works as is.
type Admin struct{}

// AdminIn is the API's address, the CA and where to write.
type AdminIn struct {
	Endpoint role.One[APIEndpointOut]
	CAs      role.One[CAsOut]
	Dir      string `attr:"kubernetes.admin_dir"`
	Issuer   role.Uses[pki.Issuer]
}

// AdminOut says where the kubeconfig is.
type AdminOut struct {
	Kubeconfig string
	Serial     string
	Sum        string
}

// Meta implements role.Role.
func (Admin) Meta() role.Meta {
	return role.Meta{Name: "kube-admin-kubeconfig", Version: "2", Scope: role.ScopeService,
		Doc: "writes the admin kubeconfig on the controller"}
}

// Run implements role.Role.
func (Admin) Run(ctx context.Context, rc *role.Context, in AdminIn) (AdminOut, error) {
	b, err := issue(ctx, rc, in.Issuer.Value, ClusterCA, pki.Request{Kind: pki.Client, Identity: heldBy(adminID, "operator")})
	if err != nil {
		return AdminOut{}, err
	}
	ep := in.Endpoint.Value
	server := "https://" + net.JoinHostPort(ep.Addr.String(), strconv.Itoa(ep.Port))
	data := kubeconfig(server, adminID.Name, in.CAs.Value.ClusterCA, b)
	path := filepath.Join(in.Dir, "admin.kubeconfig")
	if err := os.MkdirAll(in.Dir, 0o700); err != nil {
		return AdminOut{}, err
	}
	if err := deploy.WriteFile(path, data, 0o600); err != nil {
		return AdminOut{}, err
	}
	return AdminOut{Kubeconfig: path, Serial: b.Serial, Sum: digest(string(data))}, nil
}

// Check reports drift when the file is gone or changed.
func (Admin) Check(_ context.Context, _ *role.Context, _ AdminIn, last AdminOut) (string, error) {
	b, err := os.ReadFile(last.Kubeconfig)
	if err != nil {
		return last.Kubeconfig + " is missing", nil
	}
	if digest(string(b)) != last.Sum {
		return last.Kubeconfig + " was changed", nil
	}
	return "", nil
}
