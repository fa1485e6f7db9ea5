package kube

import (
	"context"
	"fmt"
	"net/netip"

	etcd "github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// APIServerCerts issues and installs an API server's certificates in
// /var/lib/kubernetes: its serving certificate (kubernetes.crt), its client
// certificates for the kubelets, for etcd and as the front proxy, the
// service-account key pair, and the three CA bundles.
//
// The serving certificate has the hard way's CN, "kubernetes", and names
// every form of kubernetes.default.svc.cluster.local, the kubernetes
// service's IP, this API server's node name and address, and the load
// balancer's name and address — nothing else. The client certificates have
// kubeadm's CNs. Every API server has certificates of its own (stored
// under IDs naming its node, ServingID), none shares a key with another.
type APIServerCerts struct{}

// APIServerCertsIn is what the names come from.
type APIServerCertsIn struct {
	CAs         role.One[CAsOut]
	EtcdCA      role.One[etcd.CAOut]
	Endpoint    role.One[APIEndpointOut]
	ServiceCIDR string `attr:"kubernetes.service_cidr"`
	Issuer      role.Uses[pki.Issuer]
}

// APIServerCertsOut lists the installed certificates.
type APIServerCertsOut struct {
	Serving, KubeletClient, EtcdClient, ProxyClient, ServiceAccount Cert
}

// APIServerGroup is the group of the API servers' kubelet-client
// certificates; RBAC lets it reach the kubelets' API.
const APIServerGroup = "mason:kube-apiservers"

// Meta implements role.Role.
func (APIServerCerts) Meta() role.Meta {
	return role.Meta{Name: "kube-apiserver-certs", Version: "2", Doc: "issues and installs an API server's certificates"}
}

// Run implements role.Role.
func (APIServerCerts) Run(ctx context.Context, rc *role.Context, in APIServerCertsIn) (APIServerCertsOut, error) {
	n := rc.Node()
	t := n.Transport
	svcIP, err := serviceIP(in.ServiceCIDR)
	if err != nil {
		return APIServerCertsOut{}, err
	}
	ep := in.Endpoint.Value
	serving := pki.Identity{
		Name:     "kubernetes",
		ID:       ServingID(n.Name),
		DNSNames: append(serviceNames(), n.Name, ep.Name),
		IPs:      []netip.Addr{svcIP, n.InterfaceAddr, ep.Addr},
	}
	var out APIServerCertsOut
	steps := []struct {
		dst     *Cert
		service string
		req     pki.Request
		name    string
		ca      string
	}{
		{&out.Serving, ClusterCA, pki.Request{Kind: pki.Server, Identity: serving}, "kubernetes", "ca.crt"},
		{&out.KubeletClient, ClusterCA, pki.Request{Kind: pki.Client, Identity: heldBy(pki.Identity{Name: "kube-apiserver-kubelet-client", Groups: []string{APIServerGroup}}, n.Name)}, "kubelet-client", ""},
		{&out.EtcdClient, etcd.Service, pki.Request{Kind: pki.Client, Identity: heldBy(pki.Identity{Name: "kube-apiserver-etcd-client"}, n.Name)}, "etcd-client", "etcd-ca.crt"},
		{&out.ProxyClient, FrontProxyCA, pki.Request{Kind: pki.Client, Identity: heldBy(pki.Identity{Name: FrontProxyClient}, n.Name)}, "front-proxy-client", "front-proxy-ca.crt"},
	}
	for _, s := range steps {
		b, err := issue(ctx, rc, in.Issuer.Value, s.service, s.req)
		if err != nil {
			return APIServerCertsOut{}, err
		}
		if *s.dst, err = install(ctx, t, b, KubernetesDir, s.name, s.ca); err != nil {
			return APIServerCertsOut{}, err
		}
	}
	if out.ServiceAccount, err = installServiceAccount(ctx, rc, in.Issuer.Value); err != nil {
		return APIServerCertsOut{}, err
	}
	return out, nil
}

// Check reports drift when an installed certificate is missing or changed.
func (APIServerCerts) Check(ctx context.Context, rc *role.Context, _ APIServerCertsIn, last APIServerCertsOut) (string, error) {
	return certsDrift(ctx, rc.Node(), last.Serving, last.KubeletClient, last.EtcdClient, last.ProxyClient, last.ServiceAccount), nil
}

// ServingID is the pki ID of node's API server serving certificate (CN
// "kubernetes", like every API server's), for pki.Authority.Renew.
func ServingID(node string) string { return "kube-apiserver/" + node }

// FrontProxyClient is the CN of the API servers' front-proxy client
// certificates, the only name aggregated API servers accept.
const FrontProxyClient = "front-proxy-client"

// heldBy gives an identity that several nodes hold (CN "admin" on every
// control-plane node) an ID of each holder's own, so each gets its own
// certificate and key.
func heldBy(id pki.Identity, holder string) pki.Identity {
	id.ID = id.Name + "/" + holder
	return id
}

// serviceNames are the kubernetes service's DNS names, every form.
func serviceNames() []string {
	return []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster", "kubernetes.default.svc." + clusterDomain}
}

// serviceIP is the first address of the service range: the kubernetes
// service's ClusterIP.
func serviceIP(cidr string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("kubernetes.service_cidr %q: %w", cidr, err)
	}
	return p.Masked().Addr().Next(), nil
}
