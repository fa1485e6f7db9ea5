package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/masonops/mason/deploy"
	etcd "github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Smoke runs the hard way's smoke test on the first control-plane node:
// every worker Ready, a secret stored encrypted in etcd, a deployment of
// two busybox pods spread over two workers, pod-to-pod traffic across
// nodes, a ClusterIP service and a NodePort, kubectl logs and exec.
type Smoke struct{}

// SmokeIn waits for every component.
type SmokeIn struct {
	Kubelets    role.All[KubeletOut]
	Proxies     role.All[KubeProxyOut]
	Controllers role.All[ControllerManagerOut]
	Schedulers  role.All[SchedulerOut]
	RBAC        role.One[RBACOut]
	Etcd        role.All[etcd.MemberOut]
	Kubeconfigs role.Same[ControlPlaneKubeconfigsOut]
	Bins        role.Same[ControlPlaneBinariesOut]
	// Dir is where the report (smoke-test.json) is written on the
	// controller.
	Dir    string `attr:"kubernetes.admin_dir"`
	Issuer role.Uses[pki.Issuer]
}

// SmokeReport is the smoke test's report on the controller.
const SmokeReport = "smoke-test.json"

// SmokeOut is what the smoke test saw.
type SmokeOut struct {
	Nodes []string
	// Pods maps each smoke pod to its node.
	Pods map[string]string
	// EtcdPrefix is how the secret starts in etcd (k8s:enc:aescbc:v1:key1).
	EtcdPrefix string
	PodToPod   string // what one pod fetched from the other, on another node
	ClusterIP  string // what the ClusterIP service answered
	NodePort   string // what the NodePort answered on a worker's address
	Logs       string
	Exec       string
}

// Meta implements role.Role.
func (Smoke) Meta() role.Meta {
	return role.Meta{Name: "kube-smoke-test", Version: "1", Scope: role.ScopeCluster,
		Doc: "the hard way's smoke test", Retry: role.Retry{MaxAttempts: 2, Initial: 2 * time.Second}}
}

const smokeManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: DoNotSchedule
          labelSelector:
            matchLabels: {app: smoke}
      containers:
        - name: web
          image: ` + BusyboxImage + `
          imagePullPolicy: Never
          command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo serving $(hostname) && exec httpd -f -p 8080 -h /www"]
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: smoke
  namespace: default
spec:
  type: NodePort
  selector: {app: smoke}
  ports:
    - port: 80
      targetPort: 8080
`

// Run implements role.Role.
func (Smoke) Run(ctx context.Context, rc *role.Context, in SmokeIn) (SmokeOut, error) {
	bins := in.Bins.Value.Installed
	k := func(limit time.Duration, stdin string, args ...string) (string, error) {
		return kubectlRetry(ctx, rc, bins, limit, stdin, args...)
	}
	var out SmokeOut
	nodes := []string{"wait", "--for=condition=Ready", "--timeout=90s"}
	for _, kl := range in.Kubelets {
		nodes = append(nodes, "node/"+kl.Node)
		out.Nodes = append(out.Nodes, kl.Node)
	}
	if _, err := k(2*time.Minute, "", nodes...); err != nil {
		return SmokeOut{}, fmt.Errorf("workers not Ready: %w", err)
	}
	// Pods need the default service account, which the controller-manager
	// creates shortly after it starts.
	if _, err := k(time.Minute, "", "get", "serviceaccount", "default", "-n", "default"); err != nil {
		return SmokeOut{}, err
	}

	// Data encryption: a secret is stored with aescbc.
	secret := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kubernetes-the-hard-way\n  namespace: default\nstringData:\n  mykey: mydata\n"
	if _, err := k(30*time.Second, secret, "apply", "-f", "-"); err != nil {
		return SmokeOut{}, err
	}
	raw, err := etcdGet(ctx, rc, in.Issuer.Value, in.Etcd, "/registry/secrets/default/kubernetes-the-hard-way")
	if err != nil {
		return SmokeOut{}, err
	}
	out.EtcdPrefix = string(raw[:min(len(raw), len("k8s:enc:aescbc:v1:key1"))])
	if !strings.HasPrefix(string(raw), "k8s:enc:aescbc:v1:") {
		return SmokeOut{}, fmt.Errorf("the secret is not encrypted in etcd: it starts with %q", out.EtcdPrefix)
	}

	// Deployments, spread over two workers.
	if _, err := k(30*time.Second, smokeManifest, "apply", "-f", "-"); err != nil {
		return SmokeOut{}, err
	}
	if _, err := k(2*time.Minute, "", "rollout", "status", "deployment/smoke", "-n", "default", "--timeout=90s"); err != nil {
		return SmokeOut{}, err
	}
	pods, err := k(30*time.Second, "", "get", "pods", "-n", "default", "-l", "app=smoke", "-o", "json")
	if err != nil {
		return SmokeOut{}, err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ NodeName string }
			Status   struct {
				PodIP string
				Phase string
			}
		}
	}
	if err := json.Unmarshal([]byte(pods), &list); err != nil {
		return SmokeOut{}, err
	}
	out.Pods = map[string]string{}
	var running []int
	for i, p := range list.Items {
		if p.Status.Phase == "Running" {
			out.Pods[p.Metadata.Name] = p.Spec.NodeName
			running = append(running, i)
		}
	}
	if len(running) < 2 {
		return SmokeOut{}, fmt.Errorf("want 2 running smoke pods, have %d", len(running))
	}
	a, b := list.Items[running[0]], list.Items[running[1]]
	if len(in.Kubelets) > 1 && a.Spec.NodeName == b.Spec.NodeName {
		return SmokeOut{}, fmt.Errorf("both smoke pods run on %s", a.Spec.NodeName)
	}

	// Pod to pod, across nodes. (No wget -T: Debian's static busybox crashes with it.)
	got, err := k(30*time.Second, "", "exec", "-n", "default", a.Metadata.Name, "--", "wget", "-qO-", "http://"+b.Status.PodIP+":8080/")
	if err != nil {
		return SmokeOut{}, fmt.Errorf("pod %s on %s reaching pod %s on %s: %w", a.Metadata.Name, a.Spec.NodeName, b.Metadata.Name, b.Spec.NodeName, err)
	}
	out.PodToPod = strings.TrimSpace(got)
	if out.PodToPod != b.Metadata.Name {
		return SmokeOut{}, fmt.Errorf("pod %s fetched %q from pod %s", a.Metadata.Name, out.PodToPod, b.Metadata.Name)
	}

	// Services: ClusterIP from a pod, NodePort from the controller.
	svc, err := k(30*time.Second, "", "get", "service", "smoke", "-n", "default", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}")
	if err != nil {
		return SmokeOut{}, err
	}
	f := strings.Fields(svc)
	if len(f) != 2 {
		return SmokeOut{}, fmt.Errorf("service smoke: got %q", svc)
	}
	if got, err = k(30*time.Second, "", "exec", "-n", "default", a.Metadata.Name, "--", "wget", "-qO-", "http://"+f[0]+"/"); err != nil {
		return SmokeOut{}, fmt.Errorf("ClusterIP %s: %w", f[0], err)
	}
	out.ClusterIP = strings.TrimSpace(got)
	worker := in.Kubelets[len(in.Kubelets)-1].Node
	addr, err := nodeAddr(ctx, rc, bins, worker)
	if err != nil {
		return SmokeOut{}, err
	}
	if out.NodePort, err = httpGet(ctx, "http://"+addr+":"+f[1]+"/"); err != nil {
		return SmokeOut{}, fmt.Errorf("NodePort %s on %s: %w", f[1], worker, err)
	}

	// Logs and exec.
	if out.Logs, err = k(30*time.Second, "", "logs", "-n", "default", a.Metadata.Name); err != nil {
		return SmokeOut{}, err
	}
	if !strings.Contains(out.Logs, "serving "+a.Metadata.Name) {
		return SmokeOut{}, fmt.Errorf("kubectl logs %s: got %q", a.Metadata.Name, out.Logs)
	}
	if got, err = k(30*time.Second, "", "exec", "-n", "default", a.Metadata.Name, "--", "hostname"); err != nil {
		return SmokeOut{}, err
	}
	out.Exec = strings.TrimSpace(got)
	if out.Exec != a.Metadata.Name {
		return SmokeOut{}, fmt.Errorf("kubectl exec %s -- hostname: got %q", a.Metadata.Name, out.Exec)
	}
	report, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return SmokeOut{}, err
	}
	if err := deploy.WriteFile(filepath.Join(in.Dir, SmokeReport), report, 0o644); err != nil {
		return SmokeOut{}, err
	}
	return out, nil
}

func nodeAddr(ctx context.Context, rc *role.Context, bins Installed, node string) (string, error) {
	out, err := kubectlRetry(ctx, rc, bins, 30*time.Second, "", "get", "node", node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

func httpGet(ctx context.Context, url string) (string, error) {
	var body string
	err := retry(ctx, 30*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		body = strings.TrimSpace(string(b))
		return nil
	})
	return body, err
}

// etcdGet reads a key straight from etcd with the controller's etcd client
// certificate: what the API server stored, bypassing the API.
func etcdGet(ctx context.Context, rc *role.Context, issuer pki.Issuer, members role.All[etcd.MemberOut], key string) ([]byte, error) {
	b, err := issue(ctx, rc, issuer, etcd.Service, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: etcd.ControllerIdentity}})
	if err != nil {
		return nil, err
	}
	cert, err := b.TLSCertificate()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := etcd.ClientTLS(cert, b.CAPEM)
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, m := range members {
		eps = append(eps, m.Value.ClientURL)
	}
	cli, err := etcd.Dial(eps, tlsCfg)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var val []byte
	err = retry(ctx, 30*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := cli.Get(cctx, key, clientv3.WithLimit(1))
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 {
			return fmt.Errorf("etcd has no key %s", key)
		}
		val = resp.Kvs[0].Value
		return nil
	})
	return val, err
}
