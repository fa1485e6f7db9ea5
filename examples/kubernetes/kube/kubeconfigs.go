package kube

import (
	"context"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// ControlPlaneKubeconfigs writes the control plane's kubeconfigs — admin,
// kube-controller-manager, kube-scheduler — each with its own embedded
// client certificate (one per node: the same user on two nodes has two
// certificates and two keys), pointing at the load balancer's DNS name.
type ControlPlaneKubeconfigs struct{}

// KubeconfigsIn is the API's address and the cluster CA.
type KubeconfigsIn struct {
	Endpoint role.One[APIEndpointOut]
	CAs      role.One[CAsOut]
	Issuer   role.Uses[pki.Issuer]
	// Resolver orders the kubeconfigs after the node can resolve the name
	// they point at: the programs that read them start right after.
	Resolver role.Same[ResolverOut]
}

// ControlPlaneKubeconfigsOut lists the files.
type ControlPlaneKubeconfigsOut struct {
	Admin, ControllerManager, Scheduler Kubeconfig
}

// Kubeconfig is one installed kubeconfig and the certificate inside it.
type Kubeconfig struct {
	File   string
	User   string
	Serial string
	Sum    string // SHA-256 of the file, for drift checks
}

// Client identities, with the hard way's CN and O.
var (
	adminID             = pki.Identity{Name: "admin", Groups: []string{"system:masters"}}
	controllerManagerID = pki.Identity{Name: "system:kube-controller-manager", Groups: []string{"system:kube-controller-manager"}}
	schedulerID         = pki.Identity{Name: "system:kube-scheduler", Groups: []string{"system:kube-scheduler"}}
	kubeProxyID         = pki.Identity{Name: "system:kube-proxy", Groups: []string{"system:node-proxier"}}
)

// Meta implements role.Role.
func (ControlPlaneKubeconfigs) Meta() role.Meta {
	return role.Meta{Name: "kube-kubeconfigs-control-plane", Version: "2",
		Doc: "writes the admin, controller-manager and scheduler kubeconfigs"}
}

// Run implements role.Role.
func (ControlPlaneKubeconfigs) Run(ctx context.Context, rc *role.Context, in KubeconfigsIn) (ControlPlaneKubeconfigsOut, error) {
	var out ControlPlaneKubeconfigsOut
	for _, k := range []struct {
		dst  *Kubeconfig
		id   pki.Identity
		file string
	}{
		{&out.Admin, adminID, KubernetesDir + "/admin.kubeconfig"},
		{&out.ControllerManager, controllerManagerID, KubernetesDir + "/kube-controller-manager.kubeconfig"},
		{&out.Scheduler, schedulerID, KubernetesDir + "/kube-scheduler.kubeconfig"},
	} {
		var err error
		if *k.dst, err = writeKubeconfig(ctx, rc, in, k.id, k.file); err != nil {
			return ControlPlaneKubeconfigsOut{}, err
		}
	}
	return out, nil
}

// Check reports drift when a kubeconfig is missing or changed.
func (ControlPlaneKubeconfigs) Check(ctx context.Context, rc *role.Context, _ KubeconfigsIn, last ControlPlaneKubeconfigsOut) (string, error) {
	return kubeconfigDrift(ctx, rc, last.Admin, last.ControllerManager, last.Scheduler), nil
}

func writeKubeconfig(ctx context.Context, rc *role.Context, in KubeconfigsIn, id pki.Identity, file string) (Kubeconfig, error) {
	b, err := issue(ctx, rc, in.Issuer.Value, ClusterCA, pki.Request{Kind: pki.Client, Identity: heldBy(id, rc.Node().Name)})
	if err != nil {
		return Kubeconfig{}, err
	}
	data := kubeconfig(in.Endpoint.Value.URL, id.Name, in.CAs.Value.ClusterCA, b)
	if err := rc.WriteFile(ctx, file, data, 0o600); err != nil {
		return Kubeconfig{}, err
	}
	return Kubeconfig{File: file, User: id.Name, Serial: b.Serial, Sum: digest(string(data))}, nil
}

func kubeconfigDrift(ctx context.Context, rc *role.Context, ks ...Kubeconfig) string {
	for _, k := range ks {
		got, err := rc.Node().Transport.Get(ctx, k.File)
		if err != nil {
			return k.File + " is missing"
		}
		if digest(string(got)) != k.Sum {
			return k.File + " was changed"
		}
	}
	return ""
}
