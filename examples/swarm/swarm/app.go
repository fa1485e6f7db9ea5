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
	"time"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/progress"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
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
	w := cfg.out()
	// The state is opened (and so locked: a second Up on it fails at once)
	// before anything is created; package deploy checks that it belongs to
	// the nodes the lab holds, and that the key is the state's.
	st, missing, err := openState(cfg, true)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return nil, err
	}
	specs := nodeSpecs(cfg)
	dep, err := deploy.Open(ctx, deploy.Options{Name: DeploymentName, Store: st, Where: "state file " + cfg.StateFile(), Missing: missing,
		Provider: l.Provider(), Nodes: specs, Purpose: deploy.Apply, Owner: "swarm example",
		Key: &deploy.KeySource{File: cfg.KeyFile(), Env: KEKEnv}, DestroyCommand: cfg.command("destroy")})
	if err != nil {
		return nil, err
	}
	sum := &Summary{}
	nodes, err := groupNodes(ctx, dep, specs, sum, w)
	if err != nil {
		return sum, err
	}
	sum.Managers, sum.Workers, sum.Service = nodes.Managers, nodes.Workers, nodes.Services[0]
	mgr, err := pki.NewManager(st, pki.Options{Key: dep.KEK()})
	if err != nil {
		return sum, err
	}
	svcs := role.NewServices()
	role.Provide[pki.Issuer](svcs, mgr)
	logw, closeLog, err := cfg.logWriter()
	if err != nil {
		return sum, err
	}
	defer closeLog()

	if err := precheckLeaving(ctx, mgr, nodes); err != nil {
		return sum, err
	}

	d := Deployment(DeploymentName, nodes)
	d.UseServices(svcs)
	d.UseKEK(dep.KEK()) // seals the join tokens in the journal
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

// FrontEndServices registers the roles' services for mason's front end
// (cli.App.Services): the pki Issuer, in the deployment's state and sealed
// under its key, as Up does.
func FrontEndServices(_ context.Context, env cli.Env, svcs *role.Services) error {
	if env.KEK == nil {
		// A plan of a new deployment seals nothing; issuing waits for apply.
		return nil
	}
	mgr, err := pki.NewManager(env.Store, pki.Options{Key: env.KEK})
	if err != nil {
		return err
	}
	role.Provide[pki.Issuer](svcs, mgr)
	return nil
}

// StateFile is the example's state file: the journal, the pki store and
// the deployment's identity.
func (c Config) StateFile() string { return filepath.Join(c.StateDir, "state.db") }

// KeyFile is the key-encryption key's file: the state file's path plus
// .kek, where mason's front end looks for it too.
func (c Config) KeyFile() string { return c.StateFile() + ".kek" }

// openState opens (and so locks) the state file, creating the state
// directory only when create is set; a missing state gives an empty store
// otherwise. missing says the file did not exist.
func openState(cfg Config, create bool) (st store.Store, missing bool, err error) {
	path := cfg.StateFile()
	if _, err := os.Stat(path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("swarm example: state file %s: %w", path, err)
		}
		missing = true
	}
	if missing && !create {
		return mem.New(), true, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, missing, fmt.Errorf("swarm example: state directory: %w", err)
	}
	b, err := bolt.Open(path, &bolt.Options{Owner: "swarm example"})
	if err != nil {
		return nil, missing, fmt.Errorf("swarm example: %w", err)
	}
	return b, missing, nil
}

// command is the command line that runs sub ("" for up, "destroy") on
// this Config's lab and state.
func (c Config) command(sub string) string {
	cmd := "go run ./examples/swarm"
	def := DefaultConfig()
	if c.Lab != def.Lab {
		cmd += " -lab " + c.Lab
	}
	if c.StateDir != def.StateDir {
		cmd += " -state " + c.StateDir
	}
	if sub != "" {
		cmd += " " + sub
	}
	return cmd
}

// nodeSpecs are the nodes cfg wants: m1..mN, w1..wN and the service node,
// with the IDs the spec gives them too.
func nodeSpecs(cfg Config) []provider.NodeSpec {
	spec := func(name, pool string) provider.NodeSpec {
		return provider.NodeSpec{ID: provider.StableID(DeploymentName, name), Name: name, Labels: map[string]string{"mason.pool": pool}}
	}
	var out []provider.NodeSpec
	for i := 1; i <= cfg.Managers; i++ {
		out = append(out, spec(managerName(i), "managers"))
	}
	for i := 1; i <= cfg.Workers; i++ {
		out = append(out, spec(workerName(i), "workers"))
	}
	return append(out, spec(ServiceNode, "services"))
}

// groupNodes creates the wanted nodes the lab does not have yet, and
// returns them by pool, with the deployment's other nodes as leaving.
func groupNodes(ctx context.Context, dep *deploy.Deployment, specs []provider.NodeSpec, sum *Summary, w io.Writer) (Nodes, error) {
	pool := map[string]string{}
	for _, ns := range specs {
		pool[ns.ID] = ns.Labels["mason.pool"]
	}
	var out Nodes
	for _, n := range dep.Nodes() {
		if _, ok := pool[n.ID]; !ok {
			out.Leaving = append(out.Leaving, n)
		}
	}
	slices.SortFunc(out.Leaving, func(a, b *provider.Node) int { return byNodeOrder(a.Name, b.Name) })
	made, err := dep.CreateNodes(ctx, func(n *provider.Node) {
		sum.Created = append(sum.Created, n.Name)
		fmt.Fprintf(w, "created node %s (%s)\n", n.Name, n.InterfaceAddr)
	})
	if err != nil {
		return Nodes{}, err
	}
	for _, n := range made {
		switch pool[n.ID] {
		case "managers":
			out.Managers = append(out.Managers, n)
		case "workers":
			out.Workers = append(out.Workers, n)
		default:
			out.Services = append(out.Services, n)
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
func precheckLeaving(ctx context.Context, issuer pki.Issuer, n Nodes) error {
	if len(n.Leaving) == 0 || len(n.Managers) == 0 {
		return nil
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

// Destroy removes the deployment's nodes and, when no node is left in the
// lab, the lab itself (every process, namespace, interface, firewall rule
// and its directory), its records in the state, and then the state
// directory (state, key and operator certificate). It works after a crash
// and when nodes are already gone, and may be run again.
func Destroy(ctx context.Context, cfg Config) error {
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
	dep, err := deploy.Open(ctx, deploy.Options{Name: DeploymentName, Store: st, Where: "state file " + cfg.StateFile(), Missing: missing,
		Provider: l.Provider(), Nodes: specs, Purpose: deploy.Destroy, Owner: "swarm example"})
	if err != nil {
		return err
	}
	if _, err := dep.Destroy(ctx); err != nil {
		return err
	}
	st.Close()
	return os.RemoveAll(cfg.StateDir)
}

// KEKEnv names the environment variable that may hold the key-encryption
// key (hex or base64) instead of the file beside the state file.
const KEKEnv = "MASON_SWARM_KEK"
