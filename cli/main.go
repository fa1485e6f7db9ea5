package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store"
)

// Exit codes of Main and Run.
const (
	ExitOK      = 0 // the command did what it was asked
	ExitFailure = 1 // something failed while doing it (a role, the provider, the state store)
	ExitUsage   = 2 // the command line or the spec is wrong; nothing was changed
)

// App is a provisioner built with mason: the roles, providers, services and
// attribute keys its specs may use. Main gives it mason's command line.
type App struct {
	// Name is the program's name in messages; "" means the executable's.
	Name string
	// Registry holds what specs may name (see package spec).
	Registry *spec.Registry
	// Stdout and Stderr default to the process's.
	Stdout, Stderr io.Writer
}

// Main runs the command line of a mason-based provisioner and exits with
// its code. The commands are plan, apply, graph, status, why and destroy;
// `NAME help` lists their flags.
//
//	func main() {
//		reg := spec.NewRegistry()
//		reg.Roles(etcd.PeerURL{}, etcd.Member{})
//		cli.Main(cli.App{Registry: reg})
//	}
func Main(app App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, app, os.Args[1:], os.Environ())
	stop()
	os.Exit(code)
}

// Run runs one command (args without the program name) and returns its
// exit code: ExitOK, ExitFailure or ExitUsage. env is the environment
// MASON_VAR_name variables are read from.
func Run(ctx context.Context, app App, args, env []string) int {
	if app.Stdout == nil {
		app.Stdout = os.Stdout
	}
	if app.Stderr == nil {
		app.Stderr = os.Stderr
	}
	if app.Name == "" {
		app.Name = filepath.Base(os.Args[0])
	}
	if app.Registry == nil {
		app.Registry = spec.NewRegistry()
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(app, app.Stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	c := &command{app: app, name: args[0], env: env, out: app.Stdout, errw: app.Stderr}
	run, ok := commands[c.name]
	if !ok {
		fmt.Fprintf(app.Stderr, "%s: unknown command %q\n\n", app.Name, c.name)
		usage(app, app.Stderr)
		return ExitUsage
	}
	if err := c.parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintf(app.Stderr, "%s %s: %v\n", app.Name, c.name, err)
		return ExitUsage
	}
	return run(c, ctx)
}

var commands = map[string]func(*command, context.Context) int{
	"plan":    (*command).plan,
	"apply":   (*command).apply,
	"graph":   (*command).graph,
	"status":  (*command).status,
	"why":     (*command).why,
	"destroy": (*command).destroy,
}

func usage(app App, w io.Writer) {
	fmt.Fprintf(w, `usage: %[1]s COMMAND [flags] [args]

commands:
  plan      show what would run, and why ("no changes" when converged)
  apply     create missing nodes and run the plan (-parallelism N, -json)
  graph     print the plan as Graphviz DOT (-format svg needs dot)
  status    what ran, what failed, what is blocked and by what
  why R@N   why node-role R@N runs or waits, and where each input comes from
  destroy   delete the spec's nodes and forget the deployment's state (-yes)

common flags:
  -spec FILE       spec file (repeatable; default: every *.hcl in the current directory)
  -var NAME=VALUE  set a variable (repeatable); also MASON_VAR_NAME=VALUE
  -var-file FILE   variable values, NAME = VALUE lines (repeatable)
  -state URL       state store: a bbolt file (default mason.state) or etcd://HOST:2379/PREFIX/

exit codes: 0 success, 1 failure, 2 usage or spec error
`, app.Name)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type command struct {
	app       App
	name      string
	env       []string
	out, errw io.Writer

	specs, vars, varFiles, force listFlag
	state                        string
	forceAll, skipChecks         bool
	parallelism                  int
	jsonOut, yes                 bool
	format                       string
	args                         []string
}

func (c *command) parse(args []string) error {
	fs := flag.NewFlagSet(c.app.Name+" "+c.name, flag.ContinueOnError)
	fs.SetOutput(c.errw)
	fs.Var(&c.specs, "spec", "spec `file` (repeatable; default: every *.hcl in the current directory)")
	fs.Var(&c.vars, "var", "set a variable: `NAME=VALUE` (repeatable)")
	fs.Var(&c.varFiles, "var-file", "read variable values from `file` (repeatable)")
	fs.StringVar(&c.state, "state", "mason.state", "state store: a bbolt file path, bolt://PATH, or etcd://HOST:2379,HOST:2379/PREFIX/")
	switch c.name {
	case "plan", "apply", "graph":
		fs.Var(&c.force, "force", "run this node-role (ROLE@NODE) or role even if converged (repeatable)")
		fs.BoolVar(&c.forceAll, "force-all", false, "run every node-role")
		fs.BoolVar(&c.skipChecks, "skip-checks", false, "plan without running roles' drift checks")
	}
	switch c.name {
	case "apply":
		fs.IntVar(&c.parallelism, "parallelism", 8, "run at most `n` node-roles at once")
		fs.BoolVar(&c.jsonOut, "json", false, "write every event as a JSON line on stdout instead of the progress display")
	case "graph":
		fs.StringVar(&c.format, "format", "dot", "dot, or svg (needs Graphviz's dot)")
	case "destroy":
		fs.BoolVar(&c.yes, "yes", false, "really delete the nodes and the state")
	}
	// Flags may come after positional arguments (why ROLE@NODE -spec x).
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		c.args = append(c.args, fs.Arg(0))
		args = fs.Args()[1:]
	}
	want := 0
	if c.name == "why" {
		want = 1
	}
	if len(c.args) != want {
		if want == 1 {
			return fmt.Errorf("want one node-role, ROLE@NODE (or ROLE for a service role); got %d arguments", len(c.args))
		}
		return fmt.Errorf("unexpected arguments %q", []string(c.args))
	}
	if c.parallelism < 0 {
		return fmt.Errorf("-parallelism %d: want a positive number", c.parallelism)
	}
	if c.format != "" && c.format != "dot" && c.format != "svg" {
		return fmt.Errorf("-format %q: want dot or svg", c.format)
	}
	return nil
}

// session is a loaded spec with its state store and nodes.
type session struct {
	spec  *spec.Spec
	st    store.Store
	prov  *provider.Provider
	nodes []*provider.Node // the provider's nodes of this spec
	svcs  *role.Services
}

func (s *session) close() {
	if s.st != nil {
		s.st.Close()
	}
	if s.prov != nil {
		s.prov.Close()
	}
}

// load reads the spec, opens the store, the provider and the services.
// It returns an exit code other than ExitOK when it failed, having said
// why.
func (c *command) load(ctx context.Context) (*session, int) {
	paths := []string(c.specs)
	if len(paths) == 0 {
		paths, _ = filepath.Glob("*.hcl")
		if len(paths) == 0 {
			fmt.Fprintf(c.errw, "%s %s: no spec: pass -spec FILE, or run it where *.hcl files are\n", c.app.Name, c.name)
			return nil, ExitUsage
		}
	}
	var files []spec.File
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(c.errw, "%s %s: reading spec: %v\n", c.app.Name, c.name, err)
			return nil, ExitUsage
		}
		files = append(files, spec.File{Name: p, Src: src})
	}
	opts := spec.Options{Env: c.env, Vars: map[string]string{}}
	for _, v := range c.vars {
		name, val, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			fmt.Fprintf(c.errw, "%s %s: -var %q: want NAME=VALUE\n", c.app.Name, c.name, v)
			return nil, ExitUsage
		}
		opts.Vars[name] = val
	}
	for _, p := range c.varFiles {
		src, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(c.errw, "%s %s: reading variable file: %v\n", c.app.Name, c.name, err)
			return nil, ExitUsage
		}
		opts.VarFiles = append(opts.VarFiles, spec.File{Name: p, Src: src})
	}
	sp, diags := spec.Load(c.app.Registry, files, opts)
	if diags.HasErrors() {
		c.diags(sp, diags)
		return nil, ExitUsage
	}
	s := &session{spec: sp}
	var err error
	if s.st, err = openState(ctx, c.state); err != nil {
		fmt.Fprintf(c.errw, "%s %s: %v\n", c.app.Name, c.name, err)
		return nil, ExitFailure
	}
	if s.prov, err = sp.OpenProvider(ctx); err != nil {
		s.close()
		fmt.Fprintf(c.errw, "%s %s: %v\n", c.app.Name, c.name, err)
		return nil, ExitFailure
	}
	if s.prov != nil {
		have, err := s.prov.List(ctx)
		if err != nil {
			s.close()
			fmt.Fprintf(c.errw, "%s %s: listing nodes of provider %s: %v\n", c.app.Name, c.name, s.prov.Name(), err)
			return nil, ExitFailure
		}
		want := map[string]bool{}
		for _, ns := range sp.NodeSpecs() {
			want[ns.ID] = true
		}
		for _, n := range have {
			if want[n.ID] {
				s.nodes = append(s.nodes, n)
			}
		}
	}
	if s.svcs, err = sp.OpenServices(ctx); err != nil {
		s.close()
		fmt.Fprintf(c.errw, "%s %s: %v\n", c.app.Name, c.name, err)
		return nil, ExitFailure
	}
	return s, ExitOK
}

func (c *command) diags(sp *spec.Spec, diags hcl.Diagnostics) {
	var files map[string]*hcl.File
	if sp != nil {
		files = sp.Files
	}
	_ = spec.WriteDiagnostics(c.errw, diags, files)
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	fmt.Fprintf(c.errw, "%s %s: %d error(s) in the spec; nothing was changed\n", c.app.Name, c.name, n)
}

// deployment builds the deployment from the session's nodes and plans it.
func (c *command) planFor(ctx context.Context, s *session, extra ...graph.PlanOption) (*graph.Deployment, *graph.Plan, int) {
	d, err := s.spec.Deployment(s.nodes)
	if err != nil {
		fmt.Fprintf(c.errw, "%s %s: %v\n", c.app.Name, c.name, err)
		return nil, nil, ExitUsage
	}
	d.UseServices(s.svcs)
	var opts []graph.PlanOption
	if len(c.force) > 0 {
		opts = append(opts, graph.Force(c.force...))
	}
	if c.forceAll {
		opts = append(opts, graph.ForceAll())
	}
	if c.skipChecks {
		opts = append(opts, graph.SkipChecks())
	}
	opts = append(opts, extra...)
	p, err := graph.NewPlan(ctx, d, s.st, opts...)
	if err != nil {
		var ce *graph.CycleError
		var be *role.BindError
		if errors.As(err, &ce) || errors.As(err, &be) {
			c.diags(s.spec, s.spec.Diagnostics(err))
			return nil, nil, ExitUsage
		}
		fmt.Fprintf(c.errw, "%s %s: planning %s: %v\n", c.app.Name, c.name, s.spec.Name, err)
		return nil, nil, ExitFailure
	}
	return d, p, ExitOK
}

// missing returns the spec's nodes the provider does not have yet.
func (s *session) missing() []provider.NodeSpec {
	if s.prov == nil {
		return nil
	}
	have := map[string]bool{}
	for _, n := range s.nodes {
		have[n.ID] = true
	}
	var out []provider.NodeSpec
	for _, ns := range s.spec.NodeSpecs() {
		if !have[ns.ID] {
			out = append(out, ns)
		}
	}
	return out
}
