package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	etcd "github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/role"
)

// APIServer runs kube-apiserver on a control-plane node with the hard way's
// flags: Node and RBAC authorization, NodeRestriction, secrets encrypted
// with the encryption config, etcd over mutual TLS, kubelets reached by
// InternalIP then Hostname.
type APIServer struct{}

// APIServerIn is the API server's dependency list.
type APIServerIn struct {
	Certs       role.Same[APIServerCertsOut]
	Bins        role.Same[ControlPlaneBinariesOut]
	Key         role.One[EncryptionKeyOut]
	Etcd        role.All[etcd.MemberOut]
	Endpoint    role.One[APIEndpointOut]
	CAs         role.One[CAsOut]
	ServiceCIDR string `attr:"kubernetes.service_cidr"`
	Port        int    `attr:"kubernetes.api_port"`
}

// APIServerOut is a ready API server.
type APIServerOut struct {
	Node string
	Addr string // host:port, a load-balancer backend
}

// Meta implements role.Role.
func (APIServer) Meta() role.Meta {
	return role.Meta{Name: "kube-apiserver", Version: "1", Doc: "runs kube-apiserver",
		Retry: role.Retry{MaxAttempts: 2, Initial: time.Second}}
}

func apiServerService(in APIServerIn, nodeIP string) service {
	var servers []string
	for _, m := range in.Etcd {
		servers = append(servers, m.Value.ClientURL)
	}
	d := KubernetesDir
	return service{Name: "kube-apiserver", Description: "Kubernetes API Server", Args: []string{
		in.Bins.Value.Bin("kube-apiserver"),
		"--advertise-address=" + nodeIP,
		"--allow-privileged=true",
		"--audit-log-maxage=30", "--audit-log-maxbackup=3", "--audit-log-maxsize=100",
		"--audit-log-path=" + LogDir + "/audit.log",
		"--authorization-mode=Node,RBAC",
		"--bind-address=0.0.0.0",
		"--secure-port=" + strconv.Itoa(in.Port),
		"--client-ca-file=" + d + "/ca.crt",
		"--enable-admission-plugins=NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota",
		"--etcd-cafile=" + d + "/etcd-ca.crt",
		"--etcd-certfile=" + d + "/etcd-client.crt",
		"--etcd-keyfile=" + d + "/etcd-client.key",
		"--etcd-servers=" + strings.Join(servers, ","),
		"--event-ttl=1h",
		"--encryption-provider-config=" + d + "/encryption-config.yaml",
		"--kubelet-certificate-authority=" + d + "/ca.crt",
		"--kubelet-client-certificate=" + d + "/kubelet-client.crt",
		"--kubelet-client-key=" + d + "/kubelet-client.key",
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--proxy-client-cert-file=" + d + "/front-proxy-client.crt",
		"--proxy-client-key-file=" + d + "/front-proxy-client.key",
		"--requestheader-allowed-names=" + FrontProxyClient,
		"--requestheader-client-ca-file=" + d + "/front-proxy-ca.crt",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--runtime-config=api/all=true",
		"--service-account-key-file=" + d + "/service-account.crt",
		"--service-account-signing-key-file=" + d + "/service-account.key",
		"--service-account-issuer=" + in.Endpoint.Value.URL,
		"--service-cluster-ip-range=" + in.ServiceCIDR,
		"--service-node-port-range=30000-32767",
		"--tls-cert-file=" + d + "/kubernetes.crt",
		"--tls-private-key-file=" + d + "/kubernetes.key",
		"--v=1",
	}}
}

// Run implements role.Role. A running API server whose flags, encryption
// config and client certificates are unchanged is left running: it reloads
// a renewed serving certificate from its files by itself, so a rotation
// needs no restart.
func (APIServer) Run(ctx context.Context, rc *role.Context, in APIServerIn) (APIServerOut, error) {
	n := rc.Node()
	ip := n.InterfaceAddr.String()
	svc := apiServerService(in, ip)
	if err := rc.WriteFile(ctx, KubernetesDir+"/encryption-config.yaml", encryptionConfig(in.Key.Value), 0o600); err != nil {
		return APIServerOut{}, err
	}
	c := in.Certs.Value
	sig := digest(string(encryptionConfig(in.Key.Value)), c.KubeletClient.Serial, c.EtcdClient.Serial, c.ProxyClient.Serial, c.ServiceAccount.Serial)
	if err := svc.ensure(ctx, rc, sig); err != nil {
		return APIServerOut{}, err
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(in.Port))
	if err := svc.waitFor(ctx, n, 90*time.Second, readyz(ctx, addr, ip, in.CAs.Value.ClusterCA)); err != nil {
		return APIServerOut{}, err
	}
	return APIServerOut{Node: n.Name, Addr: addr}, nil
}

// Check reports drift when kube-apiserver is not running.
func (APIServer) Check(ctx context.Context, rc *role.Context, in APIServerIn, _ APIServerOut) (string, error) {
	return driftIfStopped(ctx, rc, service{Name: "kube-apiserver"}), nil
}

// readyz probes an API server's /readyz, trusting only the cluster CA.
func readyz(ctx context.Context, addr, serverName string, caPEM []byte) func() error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
	return func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz on %s: %s %s", addr, resp.Status, tailLines(string(body), 3))
		}
		return nil
	}
}
