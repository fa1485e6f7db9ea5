package kube

import (
	"context"
	"fmt"
	"time"

	"github.com/masonops/mason/role"
)

// RBAC lets the API servers reach the kubelets' API (logs, exec,
// port-forward, metrics): the hard way's system:kube-apiserver-to-kubelet
// ClusterRole, bound to the group of the API servers' kubelet-client
// certificates. It runs once, on the first control-plane node.
type RBAC struct{}

// RBACIn waits for the API behind the load balancer.
type RBACIn struct {
	LB          role.One[APILoadBalancerOut]
	Kubeconfigs role.Same[ControlPlaneKubeconfigsOut]
	Bins        role.Same[ControlPlaneBinariesOut]
}

// RBACOut names what was applied.
type RBACOut struct {
	ClusterRole string
	Group       string
}

// Meta implements role.Role.
func (RBAC) Meta() role.Meta {
	return role.Meta{Name: "kube-rbac-apiserver-to-kubelet", Version: "1", Scope: role.ScopeCluster,
		Doc: "lets the API servers reach the kubelets' API"}
}

const apiserverToKubelet = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  annotations:
    rbac.authorization.kubernetes.io/autoupdate: "true"
  labels:
    kubernetes.io/bootstrapping: rbac-defaults
  name: system:kube-apiserver-to-kubelet
rules:
  - apiGroups:
      - ""
    resources:
      - nodes/proxy
      - nodes/stats
      - nodes/log
      - nodes/spec
      - nodes/metrics
    verbs:
      - "*"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-apiserver
  namespace: ""
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-apiserver-to-kubelet
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: %s
`

// Run implements role.Role.
func (RBAC) Run(ctx context.Context, rc *role.Context, in RBACIn) (RBACOut, error) {
	if _, err := kubectlRetry(ctx, rc, in.Bins.Value.Installed, time.Minute, fmt.Sprintf(apiserverToKubelet, APIServerGroup), "apply", "-f", "-"); err != nil {
		return RBACOut{}, err
	}
	return RBACOut{ClusterRole: "system:kube-apiserver-to-kubelet", Group: APIServerGroup}, nil
}
