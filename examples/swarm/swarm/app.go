package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/progress"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/bolt"
)

// DeploymentName keys the example's journal; the spec uses it too, so the
// Go program and the spec drive the same deployment.
const DeploymentName = "swarm"

// ServiceNode is the name of the node that runs the network services
// daemon.
const ServiceNode = "svc"

// Config says what Up deploys and where it keeps its state.
type Config struct {
	// Lab names the lab of namespaces the nodes run in.
	Lab string
	// LabDir is the lab's directory; "" means lab.DefaultRoot/Lab.
	LabDir string
	// StateDir holds the state file (bolt), the pki store, the
	// key-encryption key, the roles' log and the operator's certificate.
	StateDir string
	// Managers (m1..mN, 1, 3 or 5) and Workers (w1..wN) is the swarm's
	// size. Nodes beyond it leave the swarm and are deleted.
	Managers, Workers int
	// Engine is the workers' engine settings; NodeEngine overrides them
	// per node (managers keep the defaults unless named here).
	Engine     EngineSettings
	NodeEngine map[string]EngineSettings
	// Parallelism bounds how many node-roles run at once; 0 means 8.
	Parallelism int
	// Netsvcd is the program that serves `netsvcd ARGS` on the service
	// node; "" means this program.
	Netsvcd string
	// Out receives the plan and progress lines; nil discards them. Log
	// receives the roles' log lines; nil means StateDir/swarm.log.
	Out, Log io.Writer
	// Events, when set, also receives every event of the apply.
	Events graph.Subscriber
	// Progress says how the apply's progress is drawn on Out:
	// progress.Auto (live on a terminal, lines otherwise), Live or Lines.
	Progress progress.Mode
}

// EngineSettings are daemon.json settings of an engine; zero fields keep
// the defaults.
type EngineSettings struct {
	Labels     []string
	LogMaxSize string
}

// DefaultConfig is what `go run ./examples/swarm` uses: 1 manager and 2
// workers.
func DefaultConfig() Config {
	return Config{Lab: "mason-swarm", StateDir: "/var/lib/mason/swarm-example", Managers: 1, Workers: 2, Out: os.Stdout}
}

func (c Config) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

// Summary is what Up did and found.
type Summary struct {
	Plan   *graph.Plan
	Result *graph.Result
	// Managers and Workers are the swarm's nodes; Service the node that
	// runs DNS and the load balancer.
	Managers, Workers []*provider.Node
	Service           *provider.Node
	// Created and Removed name the nodes Up created and deleted.
	Created, Removed []string
	// URL is the demo service behind the load balancer; Answered the
	// nodes that answered through it after the apply.
	URL      string
	Answered []string
	// DNS is the DNS daemon's address (IP:53), Zone its zone.
	DNS, Zone string
	// OperatorDir holds the docker client certificate (DOCKER_CERT_PATH).
	OperatorDir string
	// Elapsed is Up's wall time.
	Elapsed time.Duration
}

// Nodes returns every swarm node, managers first.
func (s *Summary) Nodes() []*provider.Node { return append(slices.Clone(s.Managers), s.Workers...) }

func managerName(i int) string { return fmt.Sprintf("m%d", i) }
func workerName(i int) string  { return fmt.Sprintf("w%d", i) }

// Check reports what this machine lacks to run the example.
func Check() error {
	var missing []string
	if err := lab.Check(); err != nil {
		missing = append(missing, err.Error())
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		missing = append(missing, "dockerd not found (apt-get install docker.io)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		missing = append(missing, "/bin/busybox not found (apt-get install busybox-static)")
	}
	if len(missing) > 0 {
		return errors.New("swarm example: " + strings.Join(missing, "; "))
	}
	return nil
}

// Up makes the lab match cfg — creating missing nodes, taking nodes beyond
// cfg out of the swarm and deleting them — plans and applies the
// deployment, then proves the service answers through the load balancer.
func Up(ctx context.Context, cfg Config) (*Summary, error) {
	began := time.Now()
	if cfg.Managers < 1 {
		return nil, fmt.Errorf("swarm example: managers must be at least 1, got %d", cfg.Managers)
	}
	if cfg.Managers%2 == 0 {
		return nil, fmt.Errorf("swarm example: %d managers tolerate no more failures than %d: use an odd number (1, 3 or 5)", cfg.Managers, cfg.Managers-1)
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("swarm example: workers must be at least 0, got %d", cfg.Workers)
	}
	if err := Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	w := cfg.out()
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return nil, err
	}
	sum := &Summary{}
	nodes, err := ensureNodes(ctx, l, cfg, sum, w)
	if err != nil {
		return sum, err
	}
	sum.Managers, sum.Workers, sum.Service = nodes.Managers, nodes.Workers, nodes.Services[0]

	st, err := bolt.Open(filepath.Join(cfg.StateDir, "state.db"), nil)
	if err != nil {
		return sum, err
	}
	defer st.Close()
	svcs, closeSvcs, err := Services(cfg.StateDir)
	if err != nil {
		return sum, err
	}
	defer closeSvcs()
	logw, closeLog, err := cfg.logWriter()
	if err != nil {
		return sum, err
	}
	defer closeLog()

	if err := precheckLeaving(ctx, svcs, nodes); err != nil {
		return sum, err
	}

	d := Deployment(DeploymentName, nodes)
	d.UseServices(svcs)
	d.UseLogger(slog.New(slog.NewTextHandler(logw, nil)))
	sum.OperatorDir = filepath.Join(cfg.StateDir, "operator")
	graph.Set(d, OperatorDir, sum.OperatorDir)
	graph.Set(d, NetsvcdBinary, cfg.Netsvcd)
	for _, n := range nodes.Workers {
		setEngine(d, n.Name, cfg.Engine)
	}
	for name, s := range cfg.NodeEngine {
		setEngine(d, name, s)
	}

	plan, err := graph.NewPlan(ctx, d, st)
	if err != nil {
		return sum, err
	}
	sum.Plan = plan
	fmt.Fprintf(w, "plan for %s (%d managers, %d workers, %d leaving): %d to run, %d converged\n", cfg.Lab,
		len(nodes.Managers), len(nodes.Workers), len(nodes.Leaving), len(plan.Steps)-plan.Count(graph.ActionSkip), plan.Count(graph.ActionSkip))
	for _, s := range plan.Steps {
		if s.Action != graph.ActionSkip {
			fmt.Fprintf(w, "  %-15s %-28s %s\n", s.Action, s.ID, s.Reason)
		}
	}
	par := cfg.Parallelism
	if par == 0 {
		par = 8
	}
	show := progress.New(w, progress.Options{Mode: cfg.Progress})
	events := graph.Subscriber(show)
	if cfg.Events != nil {
		events = graph.Subscribers(show, cfg.Events)
	}
	res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: par, Events: events})
	_ = show.Close()
	sum.Result = res
	if err != nil {
		return sum, err
	}
	for _, n := range nodes.Leaving {
		if err := l.Provider().Delete(ctx, n.ID); err != nil {
			return sum, err
		}
		if err := graph.ForgetNode(ctx, st, DeploymentName, n.Name); err != nil {
			return sum, err
		}
		sum.Removed = append(sum.Removed, n.Name)
		fmt.Fprintf(w, "deleted node %s\n", n.Name)
	}

	// Whatever ran or not, the service must answer through the load
	// balancer now.
	svc := sum.Service.InterfaceAddr.String()
	port, _ := LBPort.Default()
	sum.URL = "http://" + hostPort(svc, port) + "/"
	sum.DNS = hostPort(svc, DNSPort)
	sum.Zone, _ = Domain.Default()
	var want []string
	for _, n := range sum.Nodes() {
		want = append(want, n.Name)
	}
	if sum.Answered, _, err = ReachAll(ctx, sum.URL, want, 30*time.Second); err != nil {
		return sum, fmt.Errorf("the service does not answer through the load balancer: %w", err)
	}
	sum.Elapsed = time.Since(began)
	return sum, nil
}

func setEngine(d *graph.Deployment, node string, s EngineSettings) {
	if s.Labels != nil {
		graph.SetNode(d, node, EngineLabels, s.Labels)
	}
	if s.LogMaxSize != "" {
		graph.SetNode(d, node, LogMaxSize, s.LogMaxSize)
	}
}

func (c Config) logWriter() (io.Writer, func(), error) {
	if c.Log != nil {
		return c.Log, func() {}, nil
	}
	f, err := os.OpenFile(filepath.Join(c.StateDir, "swarm.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// Services opens the roles' services: the pki Issuer on its store in
// dir (pki.db, sealed under the key-encryption key in dir/kek). Call the
// returned func to close them.
func Services(dir string) (*role.Services, func(), error) {
	svcs := role.NewServices()
	closeFn, err := provideServices(svcs, dir)
	if err != nil {
		return nil, nil, err
	}
	return svcs, closeFn, nil
}

func provideServices(svcs *role.Services, dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	kek, err := loadKEK(dir)
	if err != nil {
		return nil, err
	}
	pst, err := bolt.Open(filepath.Join(dir, "pki.db"), nil)
	if err != nil {
		return nil, err
	}
	mgr, err := pki.NewManager(pst, pki.Options{Key: kek})
	if err != nil {
		pst.Close()
		return nil, err
	}
	role.Provide[pki.Issuer](svcs, mgr)
	return func() { pst.Close() }, nil
}

// ensureNodes creates the nodes cfg names (existing ones are found, not
// made twice) and returns them with the lab's other nodes as leaving.
func ensureNodes(ctx context.Context, l *lab.Lab, cfg Config, sum *Summary, w io.Writer) (Nodes, error) {
	p := l.Provider()
	have, err := p.List(ctx)
	if err != nil {
		return Nodes{}, err
	}
	want := map[string]string{ServiceNode: "services"}
	for i := 1; i <= cfg.Managers; i++ {
		want[managerName(i)] = "managers"
	}
	for i := 1; i <= cfg.Workers; i++ {
		want[workerName(i)] = "workers"
	}
	var out Nodes
	existing := map[string]bool{}
	for _, n := range have {
		existing[n.Name] = true
		if _, ok := want[n.Name]; !ok {
			out.Leaving = append(out.Leaving, n)
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.SortFunc(names, byNodeOrder)
	made := make([]*provider.Node, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := provider.StableID(DeploymentName, name)
			if _, err := p.Create(ctx, provider.NodeSpec{ID: id, Name: name, Labels: map[string]string{"mason.pool": want[name]}}); err != nil {
				errs[i] = err
				return
			}
			made[i], errs[i] = p.WaitReady(ctx, id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Nodes{}, err
	}
	for i, name := range names {
		if !existing[name] {
			sum.Created = append(sum.Created, name)
			fmt.Fprintf(w, "created node %s (%s)\n", name, made[i].InterfaceAddr)
		}
		switch want[name] {
		case "managers":
			out.Managers = append(out.Managers, made[i])
		case "workers":
			out.Workers = append(out.Workers, made[i])
		default:
			out.Services = append(out.Services, made[i])
		}
	}
	return out, nil
}

// byNodeOrder sorts m1 < m2 < ... < m10 < w1 < ... < svc.
func byNodeOrder(a, b string) int {
	rank := func(s string) (int, int) {
		var n int
		switch {
		case s == ServiceNode:
			return 2, 0
		case strings.HasPrefix(s, "m"):
			fmt.Sscanf(s[1:], "%d", &n)
			return 0, n
		default:
			fmt.Sscanf(s[1:], "%d", &n)
			return 1, n
		}
	}
	ka, na := rank(a)
	kb, nb := rank(b)
	if ka != kb {
		return ka - kb
	}
	if na != nb {
		return na - nb
	}
	return strings.Compare(a, b)
}

// precheckLeaving refuses, before anything changes, to remove managers
// when the remaining ones would not keep the raft quorum.
func precheckLeaving(ctx context.Context, svcs *role.Services, n Nodes) error {
	if len(n.Leaving) == 0 || len(n.Managers) == 0 {
		return nil
	}
	issuer, err := role.Lookup[pki.Issuer](svcs)
	if err != nil {
		return err
	}
	e, err := newEngines(ctx, issuer)
	if err != nil {
		return err
	}
	// Any manager that answers will do, staying or leaving.
	var mgr *dockerapi.Client
	for _, m := range append(slices.Clone(n.Managers), n.Leaving...) {
		c := e.at(m.InterfaceAddr.String())
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		info, err := c.Info(cctx)
		cancel()
		if err == nil && info.Swarm.ControlAvailable {
			mgr = c
			break
		}
		c.Close()
	}
	if mgr == nil {
		return nil // no swarm yet, or no manager answers: Leave finds out
	}
	defer mgr.Close()
	nodes, err := mgr.Nodes(ctx)
	if err != nil {
		return err
	}
	var ids, names []string
	for _, l := range n.Leaving {
		for _, sn := range nodes {
			if sn.Description.Hostname == l.Name && sn.ManagerStatus != nil {
				ids = append(ids, sn.ID)
				names = append(names, l.Name)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return quorum(nodes, ids, true, "remove manager(s) "+strings.Join(names, ", "))
}

// Destroy removes the lab (every node, process, namespace, interface and
// firewall rule) and the state directory.
func Destroy(ctx context.Context, cfg Config) error {
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return err
	}
	if err := l.Teardown(ctx); err != nil {
		return err
	}
	return os.RemoveAll(cfg.StateDir)
}

// KEKEnv names the environment variable that may hold the key-encryption
// key (hex or base64) instead of the file StateDir/kek.
const KEKEnv = "MASON_SWARM_KEK"

// loadKEK loads the key-encryption key from KEKEnv or dir/kek, and makes a
// new key file only for a new state: the key of an existing one that went
// missing is an error, not a reason to start over. It sits beside the
// state only because this is an example: keep a real one somewhere the
// state file is not.
func loadKEK(dir string) (*seal.KEK, error) {
	path := filepath.Join(dir, "kek")
	k, err := seal.Load(KEKEnv, path)
	if errors.Is(err, seal.ErrNoKey) && errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(dir, "pki.db")); errors.Is(serr, fs.ErrNotExist) {
			return seal.CreateFile(path)
		}
	}
	return k, err
}
