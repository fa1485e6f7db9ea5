package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	etcd "github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/examples/kubernetes/kube"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/store/mem"
)

func TestMain(m *testing.M) {
	kube.ServeNetsvcIfChild()
	os.Exit(m.Run())
}

// needs skips outside CI when this machine cannot run the example, and
// fails in CI, where make test has installed everything.
func needs(t *testing.T) {
	t.Helper()
	var why []string
	if os.Geteuid() != 0 {
		why = append(why, "lab nodes need root")
	}
	if err := lab.Check(); err != nil {
		why = append(why, err.Error())
	}
	for _, p := range []string{"/usr/bin/etcd", "/usr/bin/containerd", "/usr/sbin/runc", "/usr/lib/cni/bridge", "/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			why = append(why, p+" missing (apt-get install etcd-server containerd runc containernetworking-plugins busybox-static)")
		}
	}
	if len(why) == 0 {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skip("cannot run the kubernetes example here: " + strings.Join(why, "; "))
	}
	t.Fatal("CI must be able to run the kubernetes example: " + strings.Join(why, "; "))
}

// testConfig makes a config with a lab and state of the test's own.
func testConfig(t *testing.T, name string, cps, workers int, log io.Writer) kube.Config {
	return kube.Config{
		Lab:           fmt.Sprintf("%s-%d", name, os.Getpid()),
		LabDir:        filepath.Join(t.TempDir(), "lab"),
		StateDir:      filepath.Join(t.TempDir(), "state"),
		ControlPlanes: cps,
		Workers:       workers,
		Out:           log,
	}
}

// TestEndToEnd deploys 3 control-plane nodes and 2 workers and walks the
// cluster's life: smoke test, independent checks of what the roles wrote,
// re-run, a killed API server, scale out and in, a serving-certificate
// rotation under load, destroy.
func TestEndToEnd(t *testing.T) {
	needs(t)
	// The first run builds the binaries from the module proxy (minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var log syncBuffer
	cfg := testConfig(t, "e2e-kube", 3, 2, &log)
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_ = kube.Destroy(context.Background(), cfg)
		}
		if t.Failed() {
			t.Logf("example output:\n%s", log.String())
		}
	})
	// The binaries first, timed on their own.
	start := time.Now()
	a, err := kube.GoBuild{}.Fetch(ctx, "v1.34.4", &log)
	require.NoError(t, err)
	t.Logf("binaries ready in %v (%s)", time.Since(start).Round(time.Millisecond), a.Dir)

	peak := watchMemory(t, cfg)
	start = time.Now()
	s, err := kube.Up(ctx, cfg)
	require.NoError(t, err)
	t.Logf("from nothing to a passed smoke test with cached binaries: %v", time.Since(start).Round(time.Millisecond))
	logTimings(t, s.Result)
	t.Logf("cluster memory so far (RSS of every process in the lab and the network daemon): %d MiB", peak()>>20)
	require.Equal(t, 0, s.Result.Count(graph.StateFailed))

	admin := adminClient(t, s)

	t.Run("SmokeTest", func(t *testing.T) {
		out := kubectlHost(t, s, "get", "nodes", "--no-headers")
		for _, w := range []string{"w1", "w2"} {
			require.Regexp(t, `(?m)^`+w+`\s+Ready\s`, out)
		}
		smoke := smokeOut(t, s)
		require.Len(t, smoke.Pods, 2)
		var nodes []string
		for _, n := range smoke.Pods {
			nodes = append(nodes, n)
		}
		slices.Sort(nodes)
		require.Equal(t, []string{"w1", "w2"}, nodes, "the two busybox pods are spread over both workers")
		require.Contains(t, smoke.Pods, smoke.PodToPod, "pod-to-pod across nodes reached the other pod")
		require.Contains(t, smoke.Pods, smoke.ClusterIP)
		require.Contains(t, smoke.Pods, smoke.NodePort)
		require.Contains(t, smoke.Logs, "serving ")
		require.Contains(t, smoke.Pods, smoke.Exec)
		// kubectl from the controller through the load balancer, too.
		pods := kubectlHost(t, s, "get", "pods", "-l", "app=smoke", "-o", "wide", "--no-headers")
		require.Equal(t, 2, strings.Count(pods, "Running"), pods)
	})

	t.Run("SecretIsEncryptedInEtcd", func(t *testing.T) {
		raw := etcdRead(t, ctx, s, cfg, "/registry/secrets/default/kubernetes-the-hard-way")
		require.True(t, bytes.HasPrefix(raw, []byte("k8s:enc:aescbc:v1:")), "stored as %q", raw[:min(len(raw), 32)])
		require.NotContains(t, string(raw), "mydata")
	})

	t.Run("EveryCertificateChainsToMasonAndNamesOnlyItsNode", func(t *testing.T) {
		checkCertificates(t, ctx, s)
	})

	t.Run("ForeignCertificateIsRefused", func(t *testing.T) {
		// Another deployment's "kubernetes" authority: same names, other root.
		other, err := pki.NewManager(mem.New(), pki.Options{KEK: bytes.Repeat([]byte{7}, 32)})
		require.NoError(t, err)
		b, err := other.Issue(ctx, kube.ClusterCA, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "admin", Groups: []string{"system:masters"}}})
		require.NoError(t, err)
		foreign, err := b.TLSCertificate()
		require.NoError(t, err)
		c := lbClient(t, s, &foreign)
		code, err := get(ctx, c, s, "/api/v1/namespaces/default/secrets")
		if err == nil {
			require.Equal(t, http.StatusUnauthorized, code, "a certificate from another authority is not a user")
		} else {
			t.Logf("refused at the handshake: %v", err)
		}
		code, err = get(ctx, admin, s, "/api/v1/namespaces/default/secrets")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("ConvergedRerunRunsNothing", func(t *testing.T) {
		again, err := kube.Up(ctx, cfg)
		require.NoError(t, err)
		require.Equal(t, 0, again.Result.Count(graph.StateSucceeded), "nothing ran")
		require.Equal(t, len(again.Plan.Steps), again.Plan.Count(graph.ActionSkip))
	})

	t.Run("KilledAPIServerIsTheOnlyOneRepaired", func(t *testing.T) {
		victim := s.ControlPlane[1]
		// Stopped, as a unit that failed for good is: its supervisor does
		// not restart it, the next plan must.
		units, err := provider.UnitsOf(victim)
		require.NoError(t, err)
		require.NoError(t, units.StopUnit(ctx, "kube-apiserver"))
		// kubectl keeps working through the load balancer.
		for range 10 {
			kubectlHost(t, s, "get", "nodes")
		}
		again, err := kube.Up(ctx, cfg)
		require.NoError(t, err)
		require.Equal(t, []string{"kube-apiserver@" + victim.Name}, ran(again.Result))
		st, _ := again.Plan.Step("kube-apiserver@" + victim.Name)
		require.Equal(t, "drifted: kube-apiserver is not running on "+victim.Name, st.Reason)
	})

	t.Run("ScaleOutRunsOnlyTheNewWorkerAndTheAggregates", func(t *testing.T) {
		cfg3 := cfg
		cfg3.Workers = 3
		s3, err := kube.Up(ctx, cfg3)
		require.NoError(t, err)
		got := map[string]string{}
		for _, st := range s3.Plan.Steps {
			if st.Action != graph.ActionSkip {
				got[st.ID] = st.Reason
			}
		}
		want := map[string]string{"kube-smoke-test@cp1": "input Kubelets changed: +w3; input Proxies changed: +w3"}
		for _, r := range []string{"kube-resolver", "kube-pod-routes", "kube-binaries-worker", "kube-pod-subnet", "kube-cni", "kube-containerd", "kube-kubeconfigs-worker", "kube-kubelet", "kube-proxy"} {
			want[r+"@w3"] = "new"
		}
		for _, n := range []string{"cp1", "cp2", "cp3", "w1", "w2"} {
			want["kube-pod-routes@"+n] = "inputs known after run (waits for kube-pod-subnet@w3)"
		}
		t.Logf("plan for the new worker:\n%s", s3.Plan)
		require.Equal(t, keys(want), keys(got))
		for _, n := range []string{"cp1", "w1", "w2"} {
			o, _ := s3.Result.Outcome("kube-pod-routes@" + n)
			require.Equal(t, graph.StateSucceeded, o.State, "routes on %s re-ran: their aggregate gained w3's subnet", n)
		}
		out := kubectlHost(t, s3, "get", "nodes", "--no-headers")
		require.Regexp(t, `(?m)^w3\s+Ready\s`, out)
		s = s3
	})

	t.Run("ScaleInDrainsDeletesAndReleases", func(t *testing.T) {
		cfg3 := cfg
		cfg3.Workers = 3
		s2, gone, err := kube.RemoveWorker(ctx, cfg3)
		require.NoError(t, err)
		require.Equal(t, "w3", gone)
		out := kubectlHost(t, s2, "get", "nodes", "--no-headers")
		require.NotContains(t, out, "w3")
		for _, n := range append(s2.ControlPlane, s2.Workers...) {
			routes := nodeRun(t, ctx, n, "ip", "-4", "route")
			require.NotRegexp(t, `via `+regexpQuote(addrOf(s.Workers, "w3")), routes, "no route via the removed worker on %s", n.Name)
		}
		lb, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
		require.NoError(t, err)
		_, err = lb.Provider().Get(ctx, "w3")
		require.ErrorIs(t, err, provider.ErrNotFound)
		s = s2
	})

	t.Run("ServingCertificateRotationFailsNoRequest", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		pctx, stopPoll := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i := range 2 { // two pollers: one keeps its connection, one dials anew every time
			wg.Add(1)
			go func(fresh bool) {
				defer wg.Done()
				c := adminClient(t, s)
				if fresh {
					c.Transport.(*http.Transport).DisableKeepAlives = true
				}
				for i := 0; i < 20000 && pctx.Err() == nil; i++ {
					code, err := get(pctx, c, s, "/api/v1/namespaces/default")
					switch {
					case pctx.Err() != nil:
					case err == nil && code == http.StatusOK:
						ok.Add(1)
					default:
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprint(code, err))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}(i == 1)
		}
		rot, err := kube.RotateServing(ctx, cfg)
		time.Sleep(time.Second)
		stopPoll()
		wg.Wait()
		require.NoError(t, err)
		for n, serial := range rot.New {
			require.NotEqual(t, rot.Old[n], serial, n)
		}
		t.Logf("rotation: %d requests through the load balancer succeeded, %d failed", ok.Load(), failed.Load())
		require.Greater(t, ok.Load(), int64(50))
		require.Zero(t, failed.Load(), "first failure: %v", firstErr.Load())
	})

	t.Logf("peak cluster memory (RSS of every process in the lab and the network daemon): %d MiB", peak()>>20)

	t.Run("DestroyLeavesNothingBehind", func(t *testing.T) {
		l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
		require.NoError(t, err)
		bridge := l.Bridge()
		var infos []*lab.NodeInfo
		for _, n := range append(s.ControlPlane, s.Workers...) {
			fresh, err := l.Provider().Get(ctx, n.ID)
			require.NoError(t, err)
			var info *lab.NodeInfo
			require.True(t, fresh.As(&info))
			infos = append(infos, info)
		}
		require.NoError(t, kube.Destroy(ctx, cfg))
		destroyed = true
		require.Error(t, exec.Command("ip", "link", "show", bridge).Run(), "bridge %s is gone", bridge)
		for _, info := range infos {
			_, err := os.Stat(info.NetNS)
			require.True(t, os.IsNotExist(err), "netns %s is gone", info.NetNS)
			require.ErrorIs(t, syscall.Kill(info.PID, 0), syscall.ESRCH, "node init %d is gone", info.PID)
		}
		out, _ := exec.Command("ps", "-eo", "args").Output()
		require.NotContains(t, string(out), cfg.LabDir, "no process of the lab")
		require.NotContains(t, string(out), cfg.StateDir, "no network services daemon")
		cg, _ := filepath.Glob("/sys/fs/cgroup/*/mason-" + cfg.Lab)
		require.Empty(t, cg, "no cgroup left")
		_, err = os.Stat(cfg.StateDir)
		require.True(t, os.IsNotExist(err))
	})
}

// TestSmallCluster is the mode for small machines: 1 control-plane node
// (one etcd member, one API server, still behind the load balancer) and 2
// workers, up to the smoke test, then destroy.
func TestSmallCluster(t *testing.T) {
	needs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var log syncBuffer
	cfg := testConfig(t, "e2e-kube1", 1, 2, &log)
	t.Cleanup(func() {
		require.NoError(t, kube.Destroy(context.Background(), cfg))
		if t.Failed() {
			t.Logf("example output:\n%s", log.String())
		}
	})
	start := time.Now()
	s, err := kube.Up(ctx, cfg)
	require.NoError(t, err)
	t.Logf("1 + 2: smoke test passed %v after start", time.Since(start).Round(time.Millisecond))
	smoke := smokeOut(t, s)
	require.Len(t, smoke.Pods, 2)
	out := kubectlHost(t, s, "get", "nodes", "--no-headers")
	require.Regexp(t, `(?m)^w1\s+Ready\s`, out)
	require.Regexp(t, `(?m)^w2\s+Ready\s`, out)
}

func ran(r *graph.Result) []string {
	var out []string
	for _, o := range r.Outcomes {
		if o.State == graph.StateSucceeded {
			out = append(out, o.ID)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func logTimings(t *testing.T, r *graph.Result) {
	var b strings.Builder
	for _, o := range r.Outcomes {
		if o.State == graph.StateSucceeded {
			fmt.Fprintf(&b, "  %-40s %v\n", o.ID, o.Duration.Round(time.Millisecond))
		}
	}
	t.Logf("per-role timings:\n%s", b.String())
}

func smokeOut(t *testing.T, s *kube.Summary) kube.SmokeOut {
	t.Helper()
	require.NotNil(t, s.Smoke.Pods, "the smoke test's output is in the summary")
	return s.Smoke
}

func kubectlHost(t *testing.T, s *kube.Summary, args ...string) string {
	t.Helper()
	argv := s.KubectlCommand(args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(argv, " "), out)
	return string(out)
}

func nodeRun(t *testing.T, ctx context.Context, n *provider.Node, args ...string) string {
	t.Helper()
	res, err := n.Transport.Run(ctx, provider.Command{Args: args})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "%v on %s: %s", args, n.Name, res.Stderr)
	return string(res.Stdout)
}

func addrOf(nodes []*provider.Node, name string) string {
	for _, n := range nodes {
		if n.Name == name {
			return n.InterfaceAddr.String()
		}
	}
	return "no-such-node"
}

func regexpQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

// adminClient talks to the API through the load balancer with the admin
// kubeconfig's certificate, read from the file the role wrote.
func adminClient(t *testing.T, s *kube.Summary) *http.Client {
	t.Helper()
	cfg := readKubeconfig(t, s.Kubeconfig)
	cert, err := tls.X509KeyPair(cfg.cert, cfg.key)
	require.NoError(t, err)
	return lbClient(t, s, &cert)
}

func lbClient(t *testing.T, s *kube.Summary, cert *tls.Certificate) *http.Client {
	cfg := readKubeconfig(t, s.Kubeconfig)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(cfg.ca))
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(s.APIURL, "https://"))
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	// Requests name the balancer's DNS name, which the certificate must
	// carry; this host's resolver does not serve it, so dial the
	// balancer's address.
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, s.LB)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DialContext: dial}}
}

func get(ctx context.Context, c *http.Client, s *kube.Summary, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.APIURL+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

type kubeconfigFile struct {
	server        string
	ca, cert, key []byte
}

func readKubeconfig(t *testing.T, path string) kubeconfigFile {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return parseKubeconfig(t, b)
}

func parseKubeconfig(t *testing.T, b []byte) kubeconfigFile {
	t.Helper()
	var k kubeconfigFile
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(strings.TrimSpace(line), ": ", 2)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "server":
			k.server = f[1]
		case "certificate-authority-data":
			k.ca = decode(t, f[1])
		case "client-certificate-data":
			k.cert = decode(t, f[1])
		case "client-key-data":
			k.key = decode(t, f[1])
		}
	}
	require.NotEmpty(t, k.server)
	return k
}

func decode(t *testing.T, s string) []byte {
	b, err := base64Decode(s)
	require.NoError(t, err)
	return b
}

// etcdRead reads a key straight from etcd with a client certificate from
// the deployment's etcd authority.
func etcdRead(t *testing.T, ctx context.Context, s *kube.Summary, cfg kube.Config, key string) []byte {
	t.Helper()
	caPEM := nodeFileBytes(t, ctx, s.ControlPlane[0], "/var/lib/kubernetes/etcd-ca.crt")
	certPEM := nodeFileBytes(t, ctx, s.ControlPlane[0], "/var/lib/kubernetes/etcd-client.crt")
	keyPEM := nodeFileBytes(t, ctx, s.ControlPlane[0], "/var/lib/kubernetes/etcd-client.key")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	tlsCfg, err := etcd.ClientTLS(cert, caPEM)
	require.NoError(t, err)
	var eps []string
	for _, n := range s.ControlPlane {
		eps = append(eps, "https://"+n.InterfaceAddr.String()+":2379")
	}
	cli, err := etcd.Dial(eps, tlsCfg)
	require.NoError(t, err)
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(cctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	return resp.Kvs[0].Value
}

func nodeFileBytes(t *testing.T, ctx context.Context, n *provider.Node, path string) []byte {
	t.Helper()
	b, err := n.Transport.Get(ctx, path)
	require.NoError(t, err, "%s on %s", path, n.Name)
	return b
}

// certWant is what one certificate must say: the hard way's CN and O, and
// exactly these SANs.
type certWant struct {
	cn   string
	o    []string
	dns  []string
	ips  []string
	kind x509.ExtKeyUsage
}

// wantCerts lists every certificate the cluster holds, by node and file
// (a kubeconfig stands for the certificate it embeds; "" is the
// controller), with the CN, O and SANs the issue asks for.
func wantCerts(s *kube.Summary) map[string]map[string]certWant {
	lbIP, _, _ := net.SplitHostPort(s.LB)
	lbName := strings.TrimPrefix(strings.Split(s.APIURL, ":")[1], "//")
	service := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"}
	client, server := x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth
	out := map[string]map[string]certWant{"": {
		"admin.kubeconfig": {cn: "admin", o: []string{"system:masters"}, kind: client},
	}}
	for _, n := range s.ControlPlane {
		ip := n.InterfaceAddr.String()
		out[n.Name] = map[string]certWant{
			"/var/lib/kubernetes/kubernetes.crt": {cn: "kubernetes", dns: append(slices.Clone(service), n.Name, lbName),
				ips: []string{"10.32.0.1", ip, lbIP}, kind: server},
			"/var/lib/kubernetes/kubelet-client.crt":                 {cn: "kube-apiserver-kubelet-client", o: []string{kube.APIServerGroup}, kind: client},
			"/var/lib/kubernetes/etcd-client.crt":                    {cn: "kube-apiserver-etcd-client", kind: client},
			"/var/lib/kubernetes/front-proxy-client.crt":             {cn: "front-proxy-client", kind: client},
			"/var/lib/kubernetes/service-account.crt":                {cn: "service-accounts", kind: client},
			"/etc/etcd/pki/member.crt":                               {cn: n.Name, dns: []string{n.Name + ".etcd.mason.lab"}, ips: []string{ip}, kind: server},
			"/var/lib/kubernetes/admin.kubeconfig":                   {cn: "admin", o: []string{"system:masters"}, kind: client},
			"/var/lib/kubernetes/kube-controller-manager.kubeconfig": {cn: "system:kube-controller-manager", o: []string{"system:kube-controller-manager"}, kind: client},
			"/var/lib/kubernetes/kube-scheduler.kubeconfig":          {cn: "system:kube-scheduler", o: []string{"system:kube-scheduler"}, kind: client},
		}
	}
	for _, n := range s.Workers {
		kubelet := certWant{cn: "system:node:" + n.Name, o: []string{"system:nodes"}, dns: []string{n.Name}, ips: []string{n.InterfaceAddr.String()}, kind: server}
		out[n.Name] = map[string]certWant{
			"/var/lib/kubelet/kubelet.crt":   kubelet,
			"/var/lib/kubelet/kubeconfig":    kubelet,
			"/var/lib/kube-proxy/kubeconfig": {cn: "system:kube-proxy", o: []string{"system:node-proxier"}, kind: client},
		}
	}
	return out
}

// checkCertificates reads every certificate file and kubeconfig on every
// node and the controller's admin kubeconfig, and checks each against
// wantCerts: it chains to one of the deployment's authorities (whose roots
// are read from the CA files on the nodes, and must be mason's), has the
// CN, O and SANs the issue lists and nothing else, and no two holders share
// a key (but the service-account key pair, which every API server must
// hold). No certificate file may be missing from the list or from a node.
func checkCertificates(t *testing.T, ctx context.Context, s *kube.Summary) {
	want := wantCerts(s)
	roots := x509.NewCertPool()
	nRoots := 0
	nodes := append(slices.Clone(s.ControlPlane), s.Workers...)
	found := map[string]map[string][]*x509.Certificate{"": {}}
	for _, n := range nodes {
		found[n.Name] = map[string][]*x509.Certificate{}
		list := nodeRun(t, ctx, n, "sh", "-c", "find /var/lib/kubernetes /var/lib/kubelet /var/lib/kube-proxy /etc/etcd/pki \\( -name '*.crt' -o -name '*kubeconfig' \\) 2>/dev/null | sort")
		files := strings.Fields(list)
		require.NotEmpty(t, files, n.Name)
		for _, f := range files {
			b := nodeFileBytes(t, ctx, n, f)
			switch {
			case strings.HasSuffix(f, "ca.crt"): // CA bundles
				for _, c := range parseCerts(t, b) {
					require.True(t, c.IsCA, "%s on %s holds CA certificates only", f, n.Name)
					require.Equal(t, []string{"mason"}, c.Subject.Organization, "%s on %s: a mason authority", f, n.Name)
					roots.AddCert(c)
					nRoots++
				}
			case strings.HasSuffix(f, "kubeconfig"):
				found[n.Name][f] = kubeconfigCerts(t, b, n.Name, f)
			default:
				found[n.Name][f] = parseCerts(t, b)
			}
		}
	}
	hostKC, err := os.ReadFile(s.Kubeconfig)
	require.NoError(t, err)
	found[""]["admin.kubeconfig"] = kubeconfigCerts(t, hostKC, "the controller", s.Kubeconfig)

	holders := map[string]string{} // public key -> node:file
	checked := 0
	for node, files := range found {
		where := func(f string) string { return fmt.Sprintf("%s on %s", f, orController(node)) }
		require.ElementsMatch(t, keys(want[node]), keys(files), "the certificates on %s", orController(node))
		for f, chain := range files {
			w := want[node][f]
			leaf := chain[0]
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{w.kind}})
			require.NoError(t, err, "%s chains to a mason authority", where(f))
			require.Equal(t, w.cn, leaf.Subject.CommonName, "CN of %s", where(f))
			require.ElementsMatch(t, w.o, leaf.Subject.Organization, "O of %s", where(f))
			require.ElementsMatch(t, w.dns, leaf.DNSNames, "DNS names of %s", where(f))
			var ips []string
			for _, ip := range leaf.IPAddresses {
				a, _ := netip.AddrFromSlice(ip)
				ips = append(ips, a.Unmap().String())
			}
			require.ElementsMatch(t, w.ips, ips, "IPs of %s", where(f))
			if strings.HasSuffix(f, "kubeconfig") {
				server := kubeconfigServer(t, node, f, s)
				if node == "" {
					require.Equal(t, "https://"+s.LB, server, "the controller's kubeconfig names the load balancer's address")
				} else {
					require.Equal(t, s.APIURL, server, "%s points at the load balancer's name", where(f))
				}
			}
			pub := string(leaf.RawSubjectPublicKeyInfo)
			if other, ok := holders[pub]; ok && !strings.HasSuffix(f, "service-account.crt") &&
				!(strings.HasSuffix(f, "/kubelet/kubeconfig") || strings.HasSuffix(f, "/kubelet/kubelet.crt")) {
				t.Fatalf("%s shares its key with %s", where(f), other)
			}
			holders[pub] = node + ":" + f
			checked++
		}
	}
	require.Equal(t, 9*len(s.ControlPlane)+3*len(s.Workers)+1, checked)
	t.Logf("checked %d certificates (CN, O, SANs, chain, own key) against %d mason roots", checked, nRoots)
}

func orController(node string) string {
	if node == "" {
		return "the controller"
	}
	return node
}

// kubeconfigCerts returns the client certificate a kubeconfig embeds.
func kubeconfigCerts(t *testing.T, b []byte, node, path string) []*x509.Certificate {
	k := parseKubeconfig(t, b)
	require.NotEmpty(t, k.cert, "%s on %s embeds a client certificate", path, node)
	return parseCerts(t, k.cert)
}

// kubeconfigServer reads the server of a kubeconfig on node ("" for the
// controller).
func kubeconfigServer(t *testing.T, node, path string, s *kube.Summary) string {
	if node == "" {
		return readKubeconfig(t, s.Kubeconfig).server
	}
	for _, n := range append(slices.Clone(s.ControlPlane), s.Workers...) {
		if n.Name == node {
			return parseKubeconfig(t, nodeFileBytes(t, context.Background(), n, path)).server
		}
	}
	t.Fatalf("no node %s", node)
	return ""
}

func parseCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	require.NotEmpty(t, out)
	return out
}

// watchMemory samples, every second, the resident memory of every process
// in the lab's nodes and of the network services daemon, and returns a
// function that reports the peak so far.
func watchMemory(t *testing.T, cfg kube.Config) func() int64 {
	var peak atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if v := clusterRSS(cfg); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return peak.Load
}

// clusterRSS sums VmRSS of every process whose command line or whose
// ancestors' name the lab's directory or the state directory (node inits
// carry the lab directory in their argv).
func clusterRSS(cfg kube.Config) int64 {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	parent := map[int]int{}
	mine := map[int]bool{}
	rss := map[int]int64{}
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		cmd, _ := os.ReadFile(p + "/cmdline")
		if bytes.Contains(cmd, []byte(cfg.LabDir)) || bytes.Contains(cmd, []byte(cfg.StateDir)) {
			mine[pid] = true
		}
		status, _ := os.ReadFile(p + "/status")
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "PPid:" {
				parent[pid], _ = strconv.Atoi(f[1])
			}
			if len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss[pid] = kb << 10
			}
		}
	}
	var total int64
	for pid, v := range rss {
		for p, depth := pid, 0; p > 1 && depth < 64; p, depth = parent[p], depth+1 {
			if mine[p] {
				total += v
				break
			}
		}
	}
	return total
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
