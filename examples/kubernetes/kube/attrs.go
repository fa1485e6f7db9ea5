package kube

import (
	"github.com/masonops/mason/attr"
)

// Authorities, one per trust domain as kubeadm keeps them. The etcd
// authority is examples/etcd's ("etcd").
const (
	ClusterCA       = "kubernetes"
	FrontProxyCA    = "kubernetes-front-proxy"
	ServiceAccounts = "kubernetes-service-accounts"
)

// Attribute keys the roles read.
var (
	Version = attr.New[string]("kubernetes.version").
		WithDoc("Kubernetes release the cluster runs").WithDefault("v1.34.4")
	Domain = attr.New[string]("kubernetes.domain").
		WithDoc("DNS zone of the API load balancer's name (api.<domain>)").WithDefault("kube.mason.lab")
	ServiceCIDR = attr.New[string]("kubernetes.service_cidr").
			WithDoc("--service-cluster-ip-range; its first address is the kubernetes service").WithDefault("10.32.0.0/24")
	ClusterCIDR = attr.New[string]("kubernetes.cluster_cidr").
			WithDoc("range the nodes' pod subnets (one /24 each) are allocated from").WithDefault("10.150.0.0/16")
	BinDir = attr.New[string]("kubernetes.bin_dir").
		WithDoc("where the binaries are installed on nodes").WithDefault("/usr/local/bin")
	APIPort = attr.New[int]("kubernetes.api_port").
		WithDoc("port of the API servers and of their load balancer").WithDefault(6443)
	LBAddr = attr.New[string]("kubernetes.lb_addr").
		WithDoc("address the API load balancer listens on (and its DNS name resolves to)")
	DNSServer = attr.New[string]("kubernetes.dns_server").
			WithDoc("resolver the nodes use for the load balancer's name (host:port, port 53)")
	AdminDir = attr.New[string]("kubernetes.admin_dir").
			WithDoc("directory on the controller for the admin kubeconfig").WithDefault("/var/lib/mason/kubernetes")
	SharedKernel = attr.New[bool]("kubernetes.shared_kernel").
			WithDoc("nodes share one kernel (lab nodes): the kubelet is shown its wanted kernel settings in the node's own mount namespace instead of changing the host's").WithDefault(false)
	CgroupPrefix = attr.New[string]("kubernetes.cgroup_prefix").
			WithDoc("parent cgroup of each kubelet's cgroup root (kubelets sharing one kernel need separate roots)").WithDefault("")
)

// Paths on the nodes: the hard way's.
const (
	KubernetesDir = "/var/lib/kubernetes" // API server, controller-manager, scheduler
	KubeletDir    = "/var/lib/kubelet"
	KubeProxyDir  = "/var/lib/kube-proxy"
	CNIConfDir    = "/etc/cni/net.d"
	CNIBinDir     = "/usr/lib/cni" // Debian's containernetworking-plugins
	ContainerdDir = "/etc/containerd"
	LogDir        = "/var/log/kubernetes"
)

// Fixed names.
const (
	// ServiceIP is the kubernetes service's address: the first of ServiceCIDR.
	clusterDomain = "cluster.local"
	clusterName   = "mason"
)
