package kube

import (
	"context"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// WorkerKubeconfigs issues a worker's kubelet certificate — CN
// system:node:<name>, O system:nodes, naming only that node; it serves the
// kubelet's API and authenticates the kubelet to the API — and writes the
// kubelet's and kube-proxy's kubeconfigs, pointing at the load balancer's
// DNS name.
type WorkerKubeconfigs struct{}

// WorkerKubeconfigsOut lists the files.
type WorkerKubeconfigsOut struct {
	KubeletCert Cert
	Kubelet     Kubeconfig
	KubeProxy   Kubeconfig
	CAFile      string
}

// Meta implements role.Role.
func (WorkerKubeconfigs) Meta() role.Meta {
	return role.Meta{Name: "kube-kubeconfigs-worker", Version: "2",
		Doc: "issues the kubelet's certificate, writes the kubelet and kube-proxy kubeconfigs"}
}

// Run implements role.Role.
func (WorkerKubeconfigs) Run(ctx context.Context, rc *role.Context, in KubeconfigsIn) (WorkerKubeconfigsOut, error) {
	n := rc.Node()
	id := nodeIdentity(n, "system:node:"+n.Name, "system:nodes")
	b, err := issue(ctx, rc, in.Issuer.Value, ClusterCA, pki.Request{Kind: pki.Peer, Identity: id})
	if err != nil {
		return WorkerKubeconfigsOut{}, err
	}
	var out WorkerKubeconfigsOut
	if out.KubeletCert, err = install(ctx, n.Transport, b, KubeletDir, "kubelet", "ca.crt"); err != nil {
		return WorkerKubeconfigsOut{}, err
	}
	out.CAFile = KubeletDir + "/ca.crt"
	data := kubeconfig(in.Endpoint.Value.URL, id.Name, in.CAs.Value.ClusterCA, b)
	file := KubeletDir + "/kubeconfig"
	if err := rc.WriteFile(ctx, file, data, 0o600); err != nil {
		return WorkerKubeconfigsOut{}, err
	}
	out.Kubelet = Kubeconfig{File: file, User: id.Name, Serial: b.Serial, Sum: digest(string(data))}
	if out.KubeProxy, err = writeKubeconfig(ctx, rc, in, kubeProxyID, KubeProxyDir+"/kubeconfig"); err != nil {
		return WorkerKubeconfigsOut{}, err
	}
	return out, nil
}

// Check reports drift when a file is missing or changed.
func (WorkerKubeconfigs) Check(ctx context.Context, rc *role.Context, _ KubeconfigsIn, last WorkerKubeconfigsOut) (string, error) {
	if d := certsDrift(ctx, rc.Node(), last.KubeletCert); d != "" {
		return d, nil
	}
	return kubeconfigDrift(ctx, rc, last.Kubelet, last.KubeProxy), nil
}
