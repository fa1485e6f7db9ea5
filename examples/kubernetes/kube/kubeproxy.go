package kube

import (
	"context"
	"fmt"
	"time"

	"github.com/masonops/mason/role"
)

// KubeProxy runs kube-proxy in iptables mode.
type KubeProxy struct{}

// KubeProxyIn is its dependency list.
type KubeProxyIn struct {
	Kubeconfigs role.Same[WorkerKubeconfigsOut]
	Bins        role.Same[WorkerBinariesOut]
	ClusterCIDR string `attr:"kubernetes.cluster_cidr"`
}

// KubeProxyOut is a running kube-proxy.
type KubeProxyOut struct{ Node string }

// KubeProxyConfig is kube-proxy's configuration file.
const KubeProxyConfig = KubeProxyDir + "/kube-proxy-config.yaml"

// Meta implements role.Role.
func (KubeProxy) Meta() role.Meta {
	return role.Meta{Name: "kube-proxy", Version: "1", Doc: "runs kube-proxy", Requires: []string{"kube-api-lb"}}
}

// Run implements role.Role.
func (KubeProxy) Run(ctx context.Context, rc *role.Context, in KubeProxyIn) (KubeProxyOut, error) {
	n := rc.Node()
	// conntrack.maxPerCore 0 leaves the kernel's table size alone: the
	// setting is the host's, shared by every lab node.
	cfg := fmt.Sprintf(`kind: KubeProxyConfiguration
apiVersion: kubeproxy.config.k8s.io/v1alpha1
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: %s:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
`, in.Kubeconfigs.Value.KubeProxy.File, in.ClusterCIDR, n.InterfaceAddr, n.InterfaceAddr)
	if err := rc.WriteFile(ctx, KubeProxyConfig, []byte(cfg), 0o644); err != nil {
		return KubeProxyOut{}, err
	}
	svc := service{Name: "kube-proxy", Description: "Kubernetes Kube Proxy", Args: []string{
		in.Bins.Value.Bin("kube-proxy"), "--config=" + KubeProxyConfig, "--hostname-override=" + n.Name, "--v=1"}}
	if err := svc.ensure(ctx, rc, digest(cfg, in.Kubeconfigs.Value.KubeProxy.Sum)); err != nil {
		return KubeProxyOut{}, err
	}
	if err := svc.waitFor(ctx, n, 60*time.Second, dialable(ctx, n.InterfaceAddr.String()+":10256")); err != nil {
		return KubeProxyOut{}, err
	}
	return KubeProxyOut{Node: n.Name}, nil
}

// Check reports drift when kube-proxy is not running.
func (KubeProxy) Check(ctx context.Context, rc *role.Context, _ KubeProxyIn, _ KubeProxyOut) (string, error) {
	return driftIfStopped(ctx, rc, service{Name: "kube-proxy"}), nil
}
