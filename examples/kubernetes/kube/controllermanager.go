package kube

import (
	"context"
	"time"

	"github.com/masonops/mason/role"
)

// ControllerManager runs kube-controller-manager with leader election, so
// any number of control-plane nodes can run it.
type ControllerManager struct{}

// ControllerManagerIn is its dependency list.
type ControllerManagerIn struct {
	Kubeconfigs role.Same[ControlPlaneKubeconfigsOut]
	Certs       role.Same[APIServerCertsOut] // the service-account key and ca.crt
	Bins        role.Same[ControlPlaneBinariesOut]
	ServiceCIDR string `attr:"kubernetes.service_cidr"`
	ClusterCIDR string `attr:"kubernetes.cluster_cidr"`
}

// ControllerManagerOut is a running controller-manager.
type ControllerManagerOut struct{ Node string }

// Meta implements role.Role.
func (ControllerManager) Meta() role.Meta {
	return role.Meta{Name: "kube-controller-manager", Version: "1", Doc: "runs kube-controller-manager (leader-elected)",
		Requires: []string{"kube-apiserver", "kube-api-lb"}}
}

func controllerManagerService(in ControllerManagerIn) service {
	d := KubernetesDir
	return service{Name: "kube-controller-manager", Description: "Kubernetes Controller Manager", Args: []string{
		in.Bins.Value.Bin("kube-controller-manager"),
		"--bind-address=0.0.0.0",
		"--cluster-cidr=" + in.ClusterCIDR,
		"--cluster-name=" + clusterName,
		"--kubeconfig=" + in.Kubeconfigs.Value.ControllerManager.File,
		"--authentication-kubeconfig=" + in.Kubeconfigs.Value.ControllerManager.File,
		"--authorization-kubeconfig=" + in.Kubeconfigs.Value.ControllerManager.File,
		"--leader-elect=true",
		"--root-ca-file=" + d + "/ca.crt",
		"--service-account-private-key-file=" + d + "/service-account.key",
		"--service-cluster-ip-range=" + in.ServiceCIDR,
		"--use-service-account-credentials=true",
		"--v=1",
	}}
}

// Run implements role.Role.
func (ControllerManager) Run(ctx context.Context, rc *role.Context, in ControllerManagerIn) (ControllerManagerOut, error) {
	svc := controllerManagerService(in)
	sig := digest(in.Kubeconfigs.Value.ControllerManager.Sum, in.Certs.Value.ServiceAccount.Serial)
	if err := svc.ensure(ctx, rc, sig); err != nil {
		return ControllerManagerOut{}, err
	}
	// It serves /healthz on 10257 once started.
	if err := svc.waitFor(ctx, rc.Node(), 60*time.Second, dialable(ctx, rc.Node().InterfaceAddr.String()+":10257")); err != nil {
		return ControllerManagerOut{}, err
	}
	return ControllerManagerOut{Node: rc.Node().Name}, nil
}

// Check reports drift when it is not running.
func (ControllerManager) Check(ctx context.Context, rc *role.Context, _ ControllerManagerIn, _ ControllerManagerOut) (string, error) {
	return driftIfStopped(ctx, rc, service{Name: "kube-controller-manager"}), nil
}
