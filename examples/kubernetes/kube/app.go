package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

// Config says how big the cluster is and where the example keeps its lab
// and state.
type Config struct {
	// Lab names the lab of namespaces the nodes run in.
	Lab string
	// LabDir is the lab's directory; "" means lab.DefaultRoot/Lab.
	LabDir string
	// StateDir holds the state file, the key-encryption key, the network
	// services daemon and the admin kubeconfig.
	StateDir string
	// ControlPlanes is 1 or 3 (etcd members, API servers); Workers at
	// least 1.
	ControlPlanes, Workers int
	// Source provides the binaries; nil means GoBuild{}.
	Source Source
	// Out receives the plan and progress lines; nil discards them.
	Out io.Writer
	// PlanOptions are passed to graph.NewPlan (Force, ...).
	PlanOptions []graph.PlanOption
}

// DefaultConfig is what `go run ./examples/kubernetes` uses: 3
// control-plane nodes and 2 workers.
func DefaultConfig() Config {
	return Config{Lab: "mason-kube", StateDir: "/var/lib/mason/kubernetes-example", ControlPlanes: 3, Workers: 2, Out: os.Stdout}
}

func (c Config) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

func (c Config) validate() error {
	if c.ControlPlanes != 1 && c.ControlPlanes != 3 {
		return fmt.Errorf("kubernetes example: control planes must be 1 or 3 (etcd needs an odd quorum), got %d", c.ControlPlanes)
	}
	if c.Workers < 1 || c.Workers > 50 {
		return fmt.Errorf("kubernetes example: workers must be 1 to 50, got %d", c.Workers)
	}
	if c.Lab == "" || c.StateDir == "" {
		return errors.New("kubernetes example: Lab and StateDir must be set")
	}
	return nil
}

// Summary is what Up did and how to reach the cluster.
type Summary struct {
	Plan         *graph.Plan
	Result       *graph.Result
	ControlPlane []*provider.Node
	Workers      []*provider.Node
	// Kubeconfig is the admin kubeconfig on the controller.
	Kubeconfig string
	// Kubectl is the controller's kubectl binary.
	Kubectl string
	// LB is the load balancer's address (host:port); APIURL its DNS name.
	LB, APIURL string
	Smoke      SmokeOut
}

// KubectlCommand is a kubectl command line that works from the controller
// (the admin kubeconfig names the load balancer's address).
func (s *Summary) KubectlCommand(args ...string) []string {
	return append([]string{s.Kubectl, "--kubeconfig=" + s.Kubeconfig}, args...)
}

// env is what a run needs open: the lab, the state, the services.
type env struct {
	lab   *lab.Lab
	st    store.Store
	dep   *deploy.Deployment
	mgr   *pki.Manager
	net   netsvcClient
	svcs  *role.Services
	nodes struct{ cp, w []*provider.Node }
}

// netsvcClient is what the example uses of the daemon's client.
type netsvcClient interface {
	netsvc.DNS
	netsvc.IPAM
	netsvc.LoadBalancer
	Close()
}

func open(ctx context.Context, cfg Config) (*env, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := lab.Check(); err != nil {
		return nil, err
	}
	for _, need := range []string{"/usr/bin/etcd", "/usr/bin/containerd", "/usr/sbin/runc", CNIBinDir + "/bridge", "/bin/busybox"} {
		if _, err := os.Stat(need); err != nil {
			return nil, fmt.Errorf("kubernetes example: %s not found: install Debian's etcd-server, containerd, runc, containernetworking-plugins and busybox-static", need)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return nil, err
	}
	st, missing, err := openState(cfg, true)
	if err != nil {
		return nil, err
	}
	e := &env{lab: l, st: st}
	// The state must belong to the lab's nodes (a lost state over a live
	// cluster is refused, not taken for a fresh start), and the key must
	// be the one the state was sealed with.
	e.dep, err = deploy.Open(ctx, deploy.Options{Name: cfg.Lab, Store: st, Where: "state file " + statePath(cfg), Missing: missing,
		Provider: l.Provider(), Nodes: nodeSpecs(cfg), Purpose: deploy.Apply, Owner: "kubernetes example",
		Key: &deploy.KeySource{File: filepath.Join(cfg.StateDir, "kek"), Env: KEKEnv}, DestroyCommand: cfg.command("destroy")})
	if err != nil {
		e.close()
		return nil, err
	}
	if e.mgr, err = pki.NewManager(st, pki.Options{Key: e.dep.KEK()}); err != nil {
		e.close()
		return nil, err
	}
	c, err := ensureNetsvc(ctx, e.mgr, cfg.StateDir, l.Gateway(), defaultOf(Domain), cfg.out())
	if err != nil {
		e.close()
		return nil, err
	}
	e.net = c
	src := cfg.Source
	if src == nil {
		src = GoBuild{}
	}
	e.svcs = role.NewServices()
	role.Provide[pki.Issuer](e.svcs, e.mgr)
	role.Provide[netsvc.DNS](e.svcs, c)
	role.Provide[netsvc.IPAM](e.svcs, c)
	role.Provide[netsvc.LoadBalancer](e.svcs, c)
	role.Provide[Source](e.svcs, src)
	return e, nil
}

func (e *env) close() {
	if e.net != nil {
		e.net.Close()
	}
	if e.st != nil {
		e.st.Close()
	}
}

func defaultOf[T any](k interface{ Default() (T, bool) }) T {
	v, _ := k.Default()
	return v
}

// KEKEnv is the environment variable that may hold the key-encryption key
// (hex or base64 of 32 bytes) instead of the key file in the state
// directory.
const KEKEnv = "MASON_KUBE_KEK"

// nodeSpecs are the nodes cp1..cpN of the control-plane pool and w1..wM of
// the workers.
func nodeSpecs(cfg Config) []provider.NodeSpec {
	var out []provider.NodeSpec
	add := func(prefix, pool string, n int) {
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("%s%d", prefix, i)
			out = append(out, provider.NodeSpec{ID: name, Name: name, Labels: map[string]string{"pool": pool}})
		}
	}
	add("cp", ControlPlanePool, cfg.ControlPlanes)
	add("w", WorkerPool, cfg.Workers)
	return out
}

// ensureNodes creates the nodes the lab does not hold yet (four at a time;
// existing ones are found, not made twice) and waits until each is ready.
func (e *env) ensureNodes(ctx context.Context) error {
	nodes, err := e.dep.CreateNodes(ctx, nil)
	if err != nil {
		return err
	}
	e.nodes.cp, e.nodes.w = nil, nil
	for _, n := range nodes { // in nodeSpecs' order
		if n.Labels["pool"] == ControlPlanePool {
			e.nodes.cp = append(e.nodes.cp, n)
		} else {
			e.nodes.w = append(e.nodes.w, n)
		}
	}
	return nil
}

// statePath is the example's state file.
func statePath(cfg Config) string { return filepath.Join(cfg.StateDir, "state.db") }

// openState opens (and so locks) the state file; create says a missing
// one may be made (else an empty store stands in). missing says the file
// did not exist.
func openState(cfg Config, create bool) (store.Store, bool, error) {
	_, err := os.Stat(statePath(cfg))
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return nil, false, fmt.Errorf("kubernetes example: state file %s: %w", statePath(cfg), err)
	}
	if missing && !create {
		return mem.New(), true, nil
	}
	st, err := bolt.Open(statePath(cfg), &bolt.Options{Owner: "kubernetes example"})
	if err != nil {
		return nil, missing, fmt.Errorf("kubernetes example: %w", err)
	}
	return st, missing, nil
}

// command is the command line that runs sub with this config.
func (c Config) command(sub string) string {
	return fmt.Sprintf("go run ./examples/kubernetes -lab %s -state %s %s", c.Lab, c.StateDir, sub)
}

func (e *env) deployment(cfg Config) *graph.Deployment {
	d := Deployment(cfg.Lab, e.nodes.cp, e.nodes.w)
	d.UseServices(e.svcs)
	d.UseKEK(e.dep.KEK()) // seals the encryption key in the journal
	gw := e.lab.Gateway().String()
	graph.Set(d, LBAddr, gw)
	graph.Set(d, DNSServer, gw)
	graph.Set(d, AdminDir, cfg.StateDir)
	// Lab nodes share the host's /usr and cgroup hierarchy: binaries go to
	// the node's own /var/lib, kubelets get cgroup roots of their own.
	graph.Set(d, BinDir, KubernetesDir+"/bin")
	graph.Set(d, CgroupPrefix, "/mason-"+cfg.Lab)
	graph.Set(d, SharedKernel, true)
	return d
}

// Up creates the lab nodes, plans and applies the deployment (which ends
// with the smoke test) and says how to reach the cluster.
func Up(ctx context.Context, cfg Config) (*Summary, error) {
	e, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()
	workers := 0
	for _, n := range e.dep.Nodes() {
		if n.Labels["pool"] == WorkerPool {
			workers++
		}
	}
	if workers > cfg.Workers {
		return nil, fmt.Errorf("kubernetes example: the lab has %d workers, want %d: scale in with RemoveWorker (the `scale-in` command)", workers, cfg.Workers)
	}
	if err := e.ensureNodes(ctx); err != nil {
		return nil, err
	}
	return e.apply(ctx, cfg)
}

func (e *env) apply(ctx context.Context, cfg Config) (*Summary, error) {
	d := e.deployment(cfg)
	plan, err := graph.NewPlan(ctx, d, e.st, cfg.PlanOptions...)
	if err != nil {
		return nil, err
	}
	w := cfg.out()
	fmt.Fprintf(w, "plan for %s (%d control-plane, %d workers):\n", cfg.Lab, len(e.nodes.cp), len(e.nodes.w))
	for _, s := range plan.Steps {
		fmt.Fprintf(w, "  %-5s %-36s %s\n", s.Action, s.ID, s.Reason)
	}
	res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: 8, Events: progress(w)})
	sum := &Summary{Plan: plan, Result: res, ControlPlane: e.nodes.cp, Workers: e.nodes.w,
		Kubeconfig: filepath.Join(cfg.StateDir, "admin.kubeconfig"),
		LB:         fmt.Sprintf("%s:%d", e.lab.Gateway(), defaultOf(APIPort)),
		APIURL:     fmt.Sprintf("https://api.%s:%d", defaultOf(Domain), defaultOf(APIPort))}
	if a, ferr := e.artifacts(ctx, cfg); ferr == nil {
		sum.Kubectl = a.Path("kubectl")
	}
	if err != nil {
		return sum, err
	}
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, SmokeReport))
	if err != nil {
		return sum, fmt.Errorf("reading the smoke test's report: %w", err)
	}
	return sum, json.Unmarshal(b, &sum.Smoke)
}

func (e *env) artifacts(ctx context.Context, cfg Config) (Artifacts, error) {
	src, err := role.Lookup[Source](e.svcs)
	if err != nil {
		return Artifacts{}, err
	}
	return src.Fetch(ctx, defaultOf(Version), io.Discard)
}

// Destroy stops the network services daemon, removes the deployment's
// nodes and, when none is left in the lab, the lab (every process,
// namespace, interface and firewall rule), then the deployment's records,
// the kubelets' cgroup roots and the state directory. It works after a
// crash and when nodes are already gone, and may be run again.
func Destroy(ctx context.Context, cfg Config) error {
	if err := stopNetsvc(cfg.StateDir); err != nil {
		return err
	}
	if err := lab.Check(); err != nil {
		return err
	}
	st, missing, err := openState(cfg, false)
	if err != nil {
		return err
	}
	defer st.Close()
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return err
	}
	// The lab holds only this deployment's nodes: all of them go, also
	// those a lost state no longer knows.
	have, err := l.Provider().List(ctx)
	if err != nil {
		return err
	}
	var specs []provider.NodeSpec
	for _, n := range have {
		specs = append(specs, provider.NodeSpec{ID: n.ID, Name: n.Name})
	}
	dep, err := deploy.Open(ctx, deploy.Options{Name: cfg.Lab, Store: st, Where: "state file " + statePath(cfg), Missing: missing,
		Provider: l.Provider(), Nodes: specs, Purpose: deploy.Destroy, Owner: "kubernetes example"})
	if err != nil {
		return err
	}
	if _, err := dep.Destroy(ctx); err != nil {
		return err
	}
	st.Close()
	if err := removeCgroups("/mason-" + cfg.Lab); err != nil {
		return err
	}
	return os.RemoveAll(cfg.StateDir)
}

// removeCgroups removes a cgroup directory tree in every hierarchy,
// children first (cgroup directories are removed with rmdir, and only
// once empty of processes, which the lab's teardown ensured).
func removeCgroups(root string) error {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hier {
		if fi, err := os.Lstat(h); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		top := filepath.Join(h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = os.Remove(dirs[i]); err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond) // processes still exiting
			}
			if err != nil {
				return fmt.Errorf("removing cgroup %s: %w", dirs[i], err)
			}
		}
	}
	return nil
}

// progress prints one line per finished or failed node-role.
func progress(w io.Writer) graph.Subscriber {
	return graph.SubscriberFunc(func(_ context.Context, e graph.Event) {
		if !e.State.Final() && e.State != graph.StateRetrying {
			return
		}
		line := fmt.Sprintf("  %-10s %-36s %v", e.State, strings.TrimSpace(e.ID), e.Duration.Round(time.Millisecond))
		if e.Err != nil {
			line += ": " + e.Err.Error()
		}
		fmt.Fprintln(w, line)
	})
}
