package kube

import (
	etcd "github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
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
	d.Bind(nil, role.Of(Fetch{}), role.Of(CAs{}), role.Of(etcd.CA{}), role.Of(EncryptionKey{}), role.Of(APIEndpoint{}), role.Of(APILoadBalancer{}), role.Of(Admin{}), role.Of(etcd.Bootstrap{}))
	d.Bind(d.AllNodes(), role.Of(Resolver{}), role.Of(Routes{}))
	d.Bind(cp, role.Of(ControlPlaneBinaries{}), role.Of(etcd.PeerURL{}), role.Of(etcd.MemberCert{}), role.Of(etcd.Member{}), role.Of(APIServerCerts{}), role.Of(APIServer{}), role.Of(ControlPlaneKubeconfigs{}), role.Of(ControllerManager{}), role.Of(Scheduler{}), role.Of(RBAC{}), role.Of(Smoke{}))
	d.Bind(w, role.Of(WorkerBinaries{}), role.Of(PodSubnet{}), role.Of(CNI{}), role.Of(Containerd{}), role.Of(WorkerKubeconfigs{}), role.Of(Kubelet{}), role.Of(KubeProxy{}))
	return d
}
