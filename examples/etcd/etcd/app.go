package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/masonops/mason/deploy"
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

// Config says where the example keeps its lab and its state.
type Config struct {
	// Lab names the lab of namespaces the members run in.
	Lab string
	// LabDir is the lab's directory; "" means lab.DefaultRoot/Lab.
	LabDir string
	// StateDir holds the state file (bolt), the key-encryption key and the
	// operator's certificate.
	StateDir string
	// KeyFile is the key-encryption key's file (mode 0600); "" means
	// StateDir/kek. The environment variable KeyEnv, when set, wins.
	KeyFile string
	// Members is how many members the cluster should have.
	Members int
	// Out receives the plan and the progress display; nil discards them.
	Out io.Writer
	// Progress says how the display draws: progress.Auto (the default)
	// redraws a status area in place when Out is a terminal and writes
	// lines otherwise.
	Progress progress.Mode
	// Force names node-roles (ROLE@NODE) or roles to run although
	// converged or held, as the front end's -force does.
	Force []string
	// ForceRemove names members that left (beyond Members) to remove even
	// if their undo fails, as the front end's -force-remove does: for a
	// node that is already gone.
	ForceRemove []string
	// Command is how the user runs the example, for the commands it
	// suggests; "" means "go run ./examples/etcd" with this Config's flags.
	Command string
	// Log, if set, also receives the progress as lines (one per start,
	// finish and failure, and a periodic summary), as a log file would.
	Log io.Writer
}

// Summary is what Up did.
type Summary struct {
	Plan      *graph.Plan
	Result    *graph.Result
	Nodes     []*provider.Node
	Endpoints []string
	Operator  OperatorOut
	// Wrote is the key/value that Up wrote and read back with the operator's
	// certificate.
	Wrote string
}

// DefaultConfig is what `go run ./examples/etcd` uses.
func DefaultConfig() Config {
	return Config{Lab: "mason-etcd", StateDir: "/var/lib/mason/etcd-example", Members: 3, Out: os.Stdout}
}

// command is the command line that runs sub ("" for up, "destroy") on
// this Config's lab and state.
func (c Config) command(sub string) string {
	cmd := c.Command
	if cmd == "" {
		cmd = "go run ./examples/etcd"
		def := DefaultConfig()
		if c.Lab != def.Lab {
			cmd += " -lab " + c.Lab
		}
		if c.StateDir != def.StateDir {
			cmd += " -state " + c.StateDir
		}
		if sub == "" && c.Members != def.Members {
			cmd += fmt.Sprintf(" -members %d", c.Members)
		}
	}
	if sub != "" {
		cmd += " " + sub
	}
	return cmd
}

func (c Config) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

// Up creates the lab nodes, plans and applies the deployment, and proves
// the cluster works with a write and a read through it.
//
// Everything is checked before anything is made: the flags, the tools, the
// state directory, the lab's capacity, and that the state belongs to the
// nodes the lab holds (see package deploy). The state file is opened (and
// so locked: a second Up on the same state fails at once) before the first
// node is created.
func Up(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Members < 1 {
		return nil, fmt.Errorf("etcd example: -members must be at least 1, got %d", cfg.Members)
	}
	if err := lab.Check(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin(cfg)); err != nil {
		return nil, fmt.Errorf("etcd example: %s not found: install Debian's etcd-server (apt-get install etcd-server)", bin(cfg))
	}
	made := missingDirs(cfg.StateDir) // what openState will create
	st, missing, err := openState(cfg, true)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	undo := func() { // leave nothing this run made when it changed nothing
		if missing {
			st.Close()
			_ = os.Remove(statePath(cfg))
		}
		for _, d := range made { // deepest first; only if empty
			_ = os.Remove(d)
		}
	}
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		undo()
		return nil, err
	}
	dep, err := deploy.Open(ctx, deploy.Options{Name: cfg.Lab, Store: st, Where: "state file " + statePath(cfg), Missing: missing,
		Provider: labProvider(l), Nodes: memberSpecs(cfg.Members), Purpose: deploy.Apply, Owner: "etcd example",
		Key: &deploy.KeySource{File: cfg.keyFile(), Env: KeyEnv}, DestroyCommand: cfg.command("destroy")})
	if err != nil {
		undo()
		return nil, err
	}
	nodes, err := dep.CreateNodes(ctx, nil)
	if err != nil {
		return nil, err
	}
	mgr, err := pki.NewManager(st, pki.Options{Key: dep.KEK()})
	if err != nil {
		return nil, err
	}
	svcs := role.NewServices()
	role.Provide[pki.Issuer](svcs, mgr)

	d := Deployment(cfg.Lab, nodes...)
	d.UseServices(svcs)
	d.UseKEK(dep.KEK())
	dep.PlanRemovals(d) // members beyond cfg.Members leave: member-remove, then their nodes are deleted
	graph.Set(d, OperatorDir, filepath.Join(cfg.StateDir, "operator"))

	var opts []graph.PlanOption
	if len(cfg.Force) > 0 {
		opts = append(opts, graph.Force(cfg.Force...))
	}
	if len(cfg.ForceRemove) > 0 {
		opts = append(opts, graph.ForceRemove(cfg.ForceRemove...))
	}
	plan, err := graph.NewPlan(ctx, d, st, opts...)
	if err != nil {
		return nil, err
	}
	w := cfg.out()
	fmt.Fprintf(w, "plan for %s (%d members): %d to run, %d converged", cfg.Lab, len(nodes),
		len(plan.Steps)-plan.Count(graph.ActionSkip), plan.Count(graph.ActionSkip))
	if len(plan.Removals) > 0 {
		fmt.Fprintf(w, ", %d members to remove", len(plan.Removals))
	}
	fmt.Fprintln(w)
	for _, rm := range plan.Removals {
		fmt.Fprintf(w, "  %-14s %-28s %s\n", "remove", "node "+rm.Node, rm.Reason)
		for _, s := range rm.Steps {
			fmt.Fprintf(w, "    %-12s %-28s %s\n", map[bool]string{true: "undo", false: "forget"}[s.Undo], s.ID, s.Reason)
		}
	}
	for _, s := range plan.Steps {
		if s.Action != graph.ActionSkip {
			fmt.Fprintf(w, "  %-14s %-28s %s\n", s.Action, s.ID, s.Reason)
		}
	}
	fmt.Fprint(w, deploy.ResumeHint(plan, cfg.command(""), func(id string) string { return "-force " + id }))
	show := progress.New(w, progress.Options{Mode: cfg.Progress})
	events := graph.Subscriber(show)
	var logged *progress.Display
	if cfg.Log != nil {
		logged = progress.New(cfg.Log, progress.Options{Mode: progress.Lines})
		events = graph.Subscribers(show, logged)
	}
	res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: 4, Events: events})
	_ = show.Close()
	if logged != nil {
		_ = logged.Close()
	}
	if res != nil {
		for _, rm := range res.Removals {
			if rm.Done {
				fmt.Fprintf(w, "removed member %s (member-remove, then its node was deleted)\n", rm.Node)
			}
		}
	}
	var re *graph.RemovalError
	if errors.As(err, &re) && re.ID != "" {
		err = fmt.Errorf("%w\nto remove %s anyway (its node is gone, say): %s -force-remove %s", err, re.Node, cfg.command(""), re.Node)
	}
	sum := &Summary{Plan: plan, Result: res, Nodes: nodes}
	if err != nil {
		return sum, err
	}
	for _, n := range nodes {
		sum.Endpoints = append(sum.Endpoints, "https://"+n.InterfaceAddr.String()+":2379")
	}
	dir := filepath.Join(cfg.StateDir, "operator")
	sum.Operator = OperatorOut{CertFile: filepath.Join(dir, "operator.crt"), KeyFile: filepath.Join(dir, "operator.key"), CAFile: filepath.Join(dir, "ca.crt")}
	sum.Wrote, err = writeRead(ctx, sum)
	return sum, err
}

func bin(cfg Config) string {
	v, _ := Binary.Default()
	return v
}

// memberSpecs are the nodes n1..nN of the members pool.
func memberSpecs(n int) []provider.NodeSpec {
	var out []provider.NodeSpec
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%d", i)
		out = append(out, provider.NodeSpec{ID: name, Name: name, Labels: map[string]string{"pool": "members"}})
	}
	return out
}

// labProvider is the lab as a provider that tells package deploy how many
// nodes its subnet has room for.
func labProvider(l *lab.Lab) *provider.Provider { return provider.New(labWithCapacity{l}) }

type labWithCapacity struct{ *lab.Lab }

// Capacity is the addresses of the lab's subnet less the network, the
// gateway (the bridge) and the broadcast address.
func (l labWithCapacity) Capacity() int {
	bits := 32 - l.Subnet().Bits()
	if bits >= 31 {
		return 1 << 30
	}
	return 1<<bits - 3
}

// KeyEnv is the environment variable that may hold the key-encryption key
// (hex or base64 of 32 bytes), instead of the key file.
const KeyEnv = "MASON_ETCD_KEK"

func (c Config) keyFile() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	return filepath.Join(c.StateDir, "kek")
}

// missingDirs lists dir and those of its parents that do not exist,
// deepest first.
func missingDirs(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return out
		}
		out = append(out, d)
	}
}

// statePath is the example's state file.
func statePath(cfg Config) string { return filepath.Join(cfg.StateDir, "state.db") }

// openState opens (and so locks) the state file. It creates the state
// directory only for a run that writes (create); a missing state gives
// an empty store otherwise. missing says the file did not exist.
func openState(cfg Config, create bool) (st store.Store, missing bool, err error) {
	path := statePath(cfg)
	if _, err := os.Stat(path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("etcd example: state file %s: %w", path, err)
		}
		missing = true
	}
	if missing && !create {
		return mem.New(), true, nil
	}
	if missing {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, true, fmt.Errorf("etcd example: state directory: %w", err)
		}
	}
	b, err := bolt.Open(path, &bolt.Options{Owner: "etcd example"})
	if err != nil {
		return nil, missing, fmt.Errorf("etcd example: %w", err)
	}
	return b, missing, nil
}

// writeRead writes a key through the cluster with the operator's
// certificate and reads it back.
func writeRead(ctx context.Context, s *Summary) (string, error) {
	cert, err := tls.LoadX509KeyPair(s.Operator.CertFile, s.Operator.KeyFile)
	if err != nil {
		return "", err
	}
	ca, err := readFile(s.Operator.CAFile)
	if err != nil {
		return "", err
	}
	tlsCfg, err := ClientTLS(cert, ca)
	if err != nil {
		return "", err
	}
	cli, err := Dial(s.Endpoints, tlsCfg)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	val := time.Now().UTC().Format(time.RFC3339Nano)
	if err := writeAndRead(ctx, cli, "mason/example/last-up", val); err != nil {
		return "", err
	}
	return "mason/example/last-up=" + val, nil
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
	// The lab holds only this deployment's members: all of them go, also
	// those a lost state no longer knows.
	have, err := l.Provider().List(ctx)
	if err != nil {
		return err
	}
	specs := memberSpecs(0)
	for _, n := range have {
		specs = append(specs, provider.NodeSpec{ID: n.ID, Name: n.Name})
	}
	dep, err := deploy.Open(ctx, deploy.Options{Name: cfg.Lab, Store: st, Where: "state file " + statePath(cfg), Missing: missing,
		Provider: labProvider(l), Nodes: specs, Purpose: deploy.Destroy, Owner: "etcd example"})
	if err != nil {
		return err
	}
	if _, err := dep.Destroy(ctx); err != nil {
		return err
	}
	st.Close()
	return os.RemoveAll(cfg.StateDir)
}
