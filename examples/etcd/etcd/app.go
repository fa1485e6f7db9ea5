package etcd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/progress"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/bolt"
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
	// Members is how many members the cluster should have.
	Members int
	// Out receives the plan and the progress display; nil discards them.
	Out io.Writer
	// Progress says how the display draws: progress.Auto (the default)
	// redraws a status area in place when Out is a terminal and writes
	// lines otherwise.
	Progress progress.Mode
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

func (c Config) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

// Up creates the lab nodes, plans and applies the deployment, and proves
// the cluster works with a write and a read through it.
func Up(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Members < 1 {
		return nil, fmt.Errorf("etcd example: members must be at least 1, got %d", cfg.Members)
	}
	if err := lab.Check(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin(cfg)); err != nil {
		return nil, fmt.Errorf("etcd example: %s not found: install Debian's etcd-server (apt-get install etcd-server)", bin(cfg))
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	if err != nil {
		return nil, err
	}
	nodes, err := ensureNodes(ctx, l, cfg)
	if err != nil {
		return nil, err
	}
	st, err := bolt.Open(filepath.Join(cfg.StateDir, "state.db"), nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	kek, err := loadKEK(filepath.Join(cfg.StateDir, "kek"))
	if err != nil {
		return nil, err
	}
	mgr, err := pki.NewManager(st, pki.Options{KEK: kek})
	if err != nil {
		return nil, err
	}
	svcs := role.NewServices()
	role.Provide[pki.Issuer](svcs, mgr)

	d := Deployment(cfg.Lab, nodes...)
	d.UseServices(svcs)
	graph.Set(d, OperatorDir, filepath.Join(cfg.StateDir, "operator"))

	plan, err := graph.NewPlan(ctx, d, st)
	if err != nil {
		return nil, err
	}
	w := cfg.out()
	fmt.Fprintf(w, "plan for %s (%d members): %d to run, %d converged\n", cfg.Lab, len(nodes),
		len(plan.Steps)-plan.Count(graph.ActionSkip), plan.Count(graph.ActionSkip))
	for _, s := range plan.Steps {
		if s.Action != graph.ActionSkip {
			fmt.Fprintf(w, "  %-14s %-28s %s\n", s.Action, s.ID, s.Reason)
		}
	}
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

// ensureNodes creates the members n1..nN in the lab (existing ones are
// found, not made twice) and waits until each is ready.
func ensureNodes(ctx context.Context, l *lab.Lab, cfg Config) ([]*provider.Node, error) {
	p := l.Provider()
	have, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(have) > cfg.Members {
		return nil, fmt.Errorf("etcd example: the lab has %d members and scaling down is not supported; run destroy first", len(have))
	}
	var nodes []*provider.Node
	for i := 1; i <= cfg.Members; i++ {
		name := fmt.Sprintf("n%d", i)
		if _, err := p.Create(ctx, provider.NodeSpec{ID: name, Name: name, Labels: map[string]string{"pool": "members"}}); err != nil {
			return nil, err
		}
		n, err := p.WaitReady(ctx, name)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// loadKEK reads the key-encryption key, creating it on first use. It sits
// beside the state file only because this is an example: keep a real one
// somewhere the state file is not.
func loadKEK(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, writeAtomic(path, b, 0o600)
	}
	if err != nil {
		return nil, err
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%s: key-encryption key must be 32 bytes, found %d", path, len(b))
	}
	return b, nil
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
