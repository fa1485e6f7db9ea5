package kube

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/masonops/mason/role"
)

// Kubelet runs the kubelet: webhook authentication and authorization of
// its API, anonymous access off, containerd as its runtime, the node's pod
// subnet from IPAM.
type Kubelet struct{}

// KubeletIn is its dependency list.
type KubeletIn struct {
	Kubeconfigs  role.Same[WorkerKubeconfigsOut]
	Containerd   role.Same[ContainerdOut]
	CNI          role.Same[CNIOut]
	Bins         role.Same[WorkerBinariesOut]
	ServiceCIDR  string `attr:"kubernetes.service_cidr"`
	CgroupPrefix string `attr:"kubernetes.cgroup_prefix"`
	SharedKernel bool   `attr:"kubernetes.shared_kernel"`
}

// KubeletOut is a running kubelet.
type KubeletOut struct {
	Node       string
	CgroupRoot string
}

// KubeletConfig is the kubelet's configuration file.
const KubeletConfig = KubeletDir + "/kubelet-config.yaml"

// Meta implements role.Role.
func (Kubelet) Meta() role.Meta {
	return role.Meta{Name: "kube-kubelet", Version: "1", Doc: "runs the kubelet", Requires: []string{"kube-api-lb"}}
}

// Run implements role.Role.
func (Kubelet) Run(ctx context.Context, rc *role.Context, in KubeletIn) (KubeletOut, error) {
	n := rc.Node()
	svcIP, err := serviceIP(in.ServiceCIDR)
	if err != nil {
		return KubeletOut{}, err
	}
	dnsIP := svcIP.As4()
	dnsIP[3] = 10
	cgroupRoot := "/"
	if in.CgroupPrefix != "" {
		// Kubelets sharing one kernel (lab nodes) need cgroup roots of
		// their own; the kubelet wants its root to exist.
		cgroupRoot = path.Join(in.CgroupPrefix, n.Name)
		script := `for d in /sys/fs/cgroup/*/; do [ -L "${d%/}" ] || mkdir -p "${d}` + strings.TrimPrefix(cgroupRoot, "/") + `"; done`
		if _, err := rc.Exec(ctx, "sh", "-c", script); err != nil {
			return KubeletOut{}, fmt.Errorf("making cgroup root %s: %w", cgroupRoot, err)
		}
	}
	if in.SharedKernel {
		if err := pinKernelTunables(ctx, rc); err != nil {
			return KubeletOut{}, err
		}
	}
	k := in.Kubeconfigs.Value
	cfg := fmt.Sprintf(`kind: KubeletConfiguration
apiVersion: kubelet.config.k8s.io/v1beta1
address: %[1]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[2]s
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: %[3]s
containerRuntimeEndpoint: unix://%[4]s
clusterDomain: %[5]s
clusterDNS:
  - %[6]s
failCgroupV1: false
failSwapOn: false
podCIDR: %[7]s
resolvConf: /etc/resolv.conf
runtimeRequestTimeout: 15m
tlsCertFile: %[8]s
tlsPrivateKeyFile: %[9]s
registerNode: true
serializeImagePulls: false
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
`, n.InterfaceAddr, k.CAFile, cgroupRoot, in.Containerd.Value.Socket, clusterDomain, fmt.Sprint(dnsIP[0], ".", dnsIP[1], ".", dnsIP[2], ".", dnsIP[3]),
		in.CNI.Value.Subnet, k.KubeletCert.File, strings.TrimSuffix(k.KubeletCert.File, ".crt")+".key")
	if err := rc.WriteFile(ctx, KubeletConfig, []byte(cfg), 0o644); err != nil {
		return KubeletOut{}, err
	}
	svc := service{Name: "kubelet", Description: "Kubernetes Kubelet", Requires: []string{"containerd"}, Args: []string{
		in.Bins.Value.Bin("kubelet"),
		"--config=" + KubeletConfig,
		"--kubeconfig=" + k.Kubelet.File,
		"--node-ip=" + n.InterfaceAddr.String(),
		"--v=1",
	}}
	if err := svc.ensure(ctx, rc, digest(cfg, k.Kubelet.Sum, k.KubeletCert.Serial)); err != nil {
		return KubeletOut{}, err
	}
	if err := svc.waitFor(ctx, n, 60*time.Second, dialable(ctx, n.InterfaceAddr.String()+":10250")); err != nil {
		return KubeletOut{}, err
	}
	return KubeletOut{Node: n.Name, CgroupRoot: cgroupRoot}, nil
}

// Check reports drift when the kubelet is not running.
func (Kubelet) Check(ctx context.Context, rc *role.Context, _ KubeletIn, _ KubeletOut) (string, error) {
	return driftIfStopped(ctx, rc, service{Name: "kubelet"}), nil
}

// kubeletTunables are the kernel settings the kubelet sets on start
// (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1, ...).
var kubeletTunables = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// pinKernelTunables shows the kubelet the kernel settings it wants, in the
// node's own mount namespace, so that a kubelet in a lab node does not
// change the kernel every lab node and the host share (a host where an oops
// panics the machine is not the lab's to make). Each differing file under
// /proc/sys is covered by a bind mount of a file with the wanted value.
func pinKernelTunables(ctx context.Context, rc *role.Context) error {
	var script strings.Builder
	script.WriteString("set -e; d=" + KubeletDir + "/pinned-sysctl; mkdir -p $d\n")
	for _, k := range slices.Sorted(maps.Keys(kubeletTunables)) {
		f := strings.ReplaceAll(k, "/", ".")
		fmt.Fprintf(&script, "if [ \"$(cat /proc/sys/%[1]s)\" != %[2]s ]; then echo %[2]s > $d/%[3]s; mount --bind $d/%[3]s /proc/sys/%[1]s; fi\n", k, kubeletTunables[k], f)
	}
	if _, err := rc.Exec(ctx, "sh", "-c", script.String()); err != nil {
		return fmt.Errorf("pinning the kubelet's kernel settings in %s's mount namespace: %w", rc.Node().Name, err)
	}
	return nil
}
