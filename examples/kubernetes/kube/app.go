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

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
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
	mgr   *pki.Manager
	kek   *seal.KEK
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
	st, err := bolt.Open(filepath.Join(cfg.StateDir, "state.db"), nil)
	if err != nil {
		return nil, err
	}
	e := &env{lab: l, st: st}
	if e.kek, err = loadKEK(filepath.Join(cfg.StateDir, "kek")); err != nil {
		e.close()
		return nil, err
	}
	if e.mgr, err = pki.NewManager(st, pki.Options{Key: e.kek}); err != nil {
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

// ensureNodes creates cp1..cpN and w1..wM (existing ones are found, not
// made twice) and waits until each is ready.
func (e *env) ensureNodes(ctx context.Context, cfg Config) error {
	p := e.lab.Provider()
	make := func(prefix, pool string, n int) ([]*provider.Node, error) {
		var out []*provider.Node
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("%s%d", prefix, i)
			if _, err := p.Create(ctx, provider.NodeSpec{ID: name, Name: name, Labels: map[string]string{"pool": pool}}); err != nil {
				return nil, err
			}
			node, err := p.WaitReady(ctx, name)
			if err != nil {
				return nil, err
			}
			out = append(out, node)
		}
		return out, nil
	}
	var err error
	if e.nodes.cp, err = make("cp", ControlPlanePool, cfg.ControlPlanes); err != nil {
		return err
	}
	e.nodes.w, err = make("w", WorkerPool, cfg.Workers)
	return err
}

func (e *env) deployment(cfg Config) *graph.Deployment {
	d := Deployment(cfg.Lab, e.nodes.cp, e.nodes.w)
	d.UseServices(e.svcs)
	d.UseKEK(e.kek) // seals the encryption key in the journal
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
	if have, err := e.lab.Provider().List(ctx); err == nil {
		workers := 0
		for _, n := range have {
			if n.Labels["pool"] == WorkerPool {
				workers++
			}
		}
		if workers > cfg.Workers {
			return nil, fmt.Errorf("kubernetes example: the lab has %d workers, want %d: scale in with RemoveWorker (the `scale-in` command)", workers, cfg.Workers)
		}
	}
	if err := e.ensureNodes(ctx, cfg); err != nil {
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

// Destroy stops the network services daemon, removes the lab (every node,
// process, namespace, interface and firewall rule), the kubelets' cgroup
// roots and the state directory.
func Destroy(ctx context.Context, cfg Config) error {
	if err := stopNetsvc(cfg.StateDir); err != nil {
		return err
	}
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return err
	}
	if err := l.Teardown(ctx); err != nil {
		return err
	}
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

// loadKEK reads the key-encryption key, creating it on first use. It sits
// beside the state file only because this is an example: keep a real one
// somewhere the state file is not.
// The same key seals the CA keys (pki) and the journal's secrets (the
// API servers' encryption key).
func loadKEK(path string) (*seal.KEK, error) {
	k, err := seal.LoadFile(path)
	if errors.Is(err, seal.ErrNoKey) {
		return seal.CreateFile(path)
	}
	return k, err
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
