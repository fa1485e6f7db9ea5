package kube

import (
	etcd "github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
)

// Pool names.
const (
	ControlPlanePool = "control-plane"
	WorkerPool       = "workers"
)

// Deployment binds the roles: authorities, the encryption key, the API
// endpoint, its load balancer and the admin kubeconfig once for the
// deployment; etcd, the API server, controller-manager and scheduler on
// every control-plane node; containerd, CNI, kubelet and kube-proxy on
// every worker; routes and the resolver everywhere; RBAC and the smoke test
// once, on the first control-plane node.
func Deployment(name string, controlPlane, workers []*provider.Node) *graph.Deployment {
	d := graph.NewDeployment(name)
	if err := d.Attrs().Declare(Version, Domain, ServiceCIDR, ClusterCIDR, BinDir, APIPort, LBAddr, DNSServer, AdminDir, CgroupPrefix, SharedKernel,
		etcd.ClusterToken, etcd.Domain, etcd.Binary); err != nil {
		panic(err) // the keys above are well-formed; this cannot fail
	}
	cp := d.Pool(ControlPlanePool, controlPlane...)
	w := d.Pool(WorkerPool, workers...)
	d.Bind(nil, Fetch{}, CAs{}, etcd.CA{}, EncryptionKey{}, APIEndpoint{}, APILoadBalancer{}, Admin{}, etcd.Bootstrap{})
	d.Bind(d.AllNodes(), Resolver{}, Routes{})
	d.Bind(cp, ControlPlaneBinaries{}, etcd.PeerURL{}, etcd.MemberCert{}, etcd.Member{},
		APIServerCerts{}, APIServer{}, ControlPlaneKubeconfigs{}, ControllerManager{}, Scheduler{}, RBAC{}, Smoke{})
	d.Bind(w, WorkerBinaries{}, PodSubnet{}, CNI{}, Containerd{}, WorkerKubeconfigs{}, Kubelet{}, KubeProxy{})
	return d
}
