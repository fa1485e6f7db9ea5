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
	"regexp"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
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
	// Services, if set, registers services that live in the deployment's
	// state or need its key-encryption key (a pki.Manager) in svcs, after
	// the spec's service blocks are configured. It runs for every command
	// but destroy.
	Services func(ctx context.Context, env Env, svcs *role.Services) error
	// KeyEnv names the environment variable that may hold the
	// key-encryption key; "" means MASON_KEK.
	KeyEnv string
	// Stdout and Stderr default to the process's.
	Stdout, Stderr io.Writer
}

// Env is what App.Services gets to build services on: the deployment's
// name, its state store and its key-encryption key (nil only for a plan
// of a new deployment, which seals nothing).
type Env struct {
	Deployment string
	Store      store.Store
	KEK        *seal.KEK
}

// Main runs the command line of a mason-based provisioner and exits with
// its code. The commands are plan, apply, graph, status, why and destroy;
// `NAME help` lists them and `NAME help COMMAND` (or `NAME COMMAND -h`)
// prints one command's flags.
//
//	func main() {
//		reg := spec.NewRegistry()
//		reg.Roles(role.Of(etcd.PeerURL{}), role.Of(etcd.Member{}))
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
	if len(args) == 0 {
		usage(app, app.Stderr)
		return ExitUsage
	}
	name := args[0]
	if isHelp(name) {
		if len(args) == 1 {
			usage(app, app.Stdout)
			return ExitOK
		}
		name, args = args[1], []string{args[1], "-h"}
	}
	info, ok := commandNamed(name)
	if !ok {
		fmt.Fprintf(app.Stderr, "%s: unknown command %q\n\n", app.Name, name)
		usage(app, app.Stderr)
		return ExitUsage
	}
	c := &command{app: app, info: info, name: info.name, env: env, out: app.Stdout, errw: app.Stderr}
	if err := c.parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.help(app.Stdout)
			return ExitOK
		}
		fmt.Fprintf(app.Stderr, "%s %s: %v\n(%s help %s lists its flags)\n", app.Name, c.name, err, app.Name, c.name)
		return ExitUsage
	}
	return info.run(c, ctx)
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

// commandInfo describes one command for Run and for help.
type commandInfo struct {
	name, args, summary string
	run                 func(*command, context.Context) int
}

var commandList = []commandInfo{
	{"plan", "", `show what would run, and why ("no changes" when converged)`, (*command).plan},
	{"apply", "", "create missing nodes and run the plan, with a progress display", (*command).apply},
	{"graph", "", "print the plan as Graphviz DOT (-format svg needs Graphviz's dot)", (*command).graph},
	{"status", "", "what ran, what failed, what is blocked and by what; exits 1 if anything failed or is blocked", (*command).status},
	{"why", "ROLE@NODE", "why node-role ROLE@NODE (or service role ROLE) runs or waits, and where each input comes from", (*command).why},
	{"destroy", "", "delete the spec's nodes and forget the deployment's state (-yes)", (*command).destroy},
}

func commandNamed(name string) (commandInfo, bool) {
	for _, ci := range commandList {
		if ci.name == name {
			return ci, true
		}
	}
	return commandInfo{}, false
}

func usage(app App, w io.Writer) {
	fmt.Fprintf(w, "usage: %s COMMAND [flags] [args]\n\ncommands:\n", app.Name)
	for _, ci := range commandList {
		fmt.Fprintf(w, "  %-8s  %s\n", ci.name, ci.summary)
	}
	fmt.Fprintf(w, `
common flags:
  -spec FILE       spec file (repeatable; default: every *.hcl in the current directory)
  -var NAME=VALUE  set a variable (repeatable); also MASON_VAR_NAME=VALUE
  -var-file FILE   variable values, NAME = VALUE lines (repeatable)
  -state URL       state store: a bbolt file (default mason.state) or etcd://HOST:2379/PREFIX/

%[1]s help COMMAND (or %[1]s COMMAND -h) prints a command's flags.
exit codes: 0 success, 1 failure, 2 usage or spec error (nothing was changed)
`, app.Name)
}

// help prints one command's usage and flags.
func (c *command) help(w io.Writer) {
	args := " [flags]"
	if c.info.args != "" {
		args += " " + c.info.args
	}
	fmt.Fprintf(w, "usage: %s %s%s\n\n%s.\n\nflags:\n", c.app.Name, c.name, args, upperFirst(c.info.summary))
	fresh := &command{app: c.app, info: c.info, name: c.name} // defaults, not what was parsed
	fs := fresh.flags()
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type command struct {
	app       App
	info      commandInfo
	name      string
	env       []string
	out, errw io.Writer

	specs, vars, varFiles, force listFlag
	forceRemove                  listFlag
	state                        string
	forceAll, skipChecks         bool
	parallelism                  int
	jsonOut, yes, newKey         bool
	keyFile                      string
	format                       string
	args                         []string
}

func (c *command) keyEnv() string {
	if c.app.KeyEnv != "" {
		return c.app.KeyEnv
	}
	return "MASON_KEK"
}

// keySource is where this command looks for the key-encryption key.
func (c *command) keySource() *deploy.KeySource {
	ks := &deploy.KeySource{Env: c.keyEnv(), File: c.keyFile, New: c.newKey}
	if ks.File == "" && !strings.Contains(c.state, "://") {
		ks.File = c.state + ".kek"
	} else if ks.File == "" && strings.HasPrefix(c.state, "bolt://") {
		ks.File = strings.TrimPrefix(c.state, "bolt://") + ".kek"
	}
	return ks
}

// flags defines the command's flags on a new FlagSet bound to c.
func (c *command) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(c.app.Name+" "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run prints errors and help itself
	fs.Usage = func() {}
	fs.Var(&c.specs, "spec", "spec `file` (repeatable; default: every *.hcl in the current directory)")
	fs.Var(&c.vars, "var", "set a variable: `NAME=VALUE` (repeatable; also MASON_VAR_NAME=VALUE)")
	fs.Var(&c.varFiles, "var-file", "read variable values from `file` (repeatable)")
	fs.StringVar(&c.state, "state", "mason.state", "state store: a bbolt file path, bolt://PATH, or etcd://HOST:2379,HOST:2379/PREFIX/ (etcds:// with ?ca=&cert=&key= for TLS)")
	if c.name != "destroy" {
		fs.StringVar(&c.keyFile, "key-file", "", "key-encryption key `file`, mode 0600 (default: the state file's path + .kek; made for a new deployment only); $"+c.keyEnv()+" wins when set")
	}
	if c.name == "apply" {
		fs.BoolVar(&c.newKey, "new-key", false, "make a key-encryption key for a deployment whose state was written before keys were used (never for one that had a key: what it sealed would be lost)")
	}
	switch c.name {
	case "plan", "apply", "graph":
		fs.Var(&c.force, "force", "run this node-role (`ROLE@NODE`) or every node-role of a role (ROLE) even if converged or held (repeatable)")
		fs.BoolVar(&c.forceAll, "force-all", false, "run every node-role")
		fs.BoolVar(&c.skipChecks, "skip-checks", false, "plan without running roles' drift checks")
		fs.Var(&c.forceRemove, "force-remove", "remove node `NODE`, which left the deployment, even if its roles' undos fail (it is already gone, say); the undos still run (repeatable)")
	}
	switch c.name {
	case "apply":
		fs.IntVar(&c.parallelism, "parallelism", 8, "run at most `n` node-roles at once (at least 1)")
		fs.BoolVar(&c.jsonOut, "json", false, "write every event as a JSON line on stdout instead of the progress display")
	case "graph":
		fs.StringVar(&c.format, "format", "dot", "`format`: dot, or svg (needs Graphviz's dot)")
	case "destroy":
		fs.BoolVar(&c.yes, "yes", false, "really delete the nodes and the state")
	}
	return fs
}

func (c *command) parse(args []string) error {
	fs := c.flags()
	// Flags may come after positional arguments (why ROLE@NODE -spec x).
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if isHelp(fs.Arg(0)) {
			return flag.ErrHelp // plan help, why help
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
	if c.name == "apply" && c.parallelism < 1 {
		return fmt.Errorf("-parallelism %d: want at least 1", c.parallelism)
	}
	if c.format != "" && c.format != "dot" && c.format != "svg" {
		return fmt.Errorf("-format %q: want dot or svg", c.format)
	}
	return nil
}

// session is a loaded spec with its state store and nodes.
type session struct {
	spec  *spec.Spec
	st    *state
	dep   *deploy.Deployment
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
	purpose := deploy.Read
	switch c.name {
	case "apply":
		purpose = deploy.Apply
	case "destroy":
		purpose = deploy.Destroy
	}
	var err error
	if s.st, err = openState(ctx, c.state, purpose != deploy.Read, c.app.Name+" "+c.name); err != nil {
		return nil, c.failErr("", err)
	}
	if s.prov, err = sp.OpenProvider(ctx); err != nil {
		s.close()
		return nil, c.failErr("", err)
	}
	do := deploy.Options{Name: sp.Name, Store: s.st, Where: s.st.where, Missing: s.st.missing,
		Provider: s.prov, Nodes: sp.NodeSpecs(), Purpose: purpose, Owner: c.app.Name + " " + c.name,
		DestroyCommand: c.commandLine("destroy", "-yes")}
	if purpose != deploy.Destroy {
		do.Key = c.keySource()
	}
	s.dep, err = deploy.Open(ctx, do)
	if err != nil {
		s.close()
		if s.st.missing && purpose != deploy.Read {
			_ = os.Remove(strings.TrimPrefix(c.state, "bolt://")) // made by this command: nothing was changed
		}
		return nil, c.failErr("", err)
	}
	want := map[string]bool{}
	for _, ns := range sp.NodeSpecs() {
		want[ns.ID] = true
	}
	for _, n := range s.dep.Nodes() {
		if want[n.ID] {
			s.nodes = append(s.nodes, n)
		}
	}
	if s.svcs, err = sp.OpenServices(ctx); err != nil {
		s.close()
		return nil, c.failErr("", err)
	}
	if c.app.Services != nil && purpose != deploy.Destroy {
		if err := c.app.Services(ctx, Env{Deployment: sp.Name, Store: s.st, KEK: s.dep.KEK()}, s.svcs); err != nil {
			s.close()
			return nil, c.failErr("configuring services", err)
		}
	}
	return s, ExitOK
}

// commandLine is the command that runs cmd on the same deployment as this
// one: the program, cmd, the spec, variable and state flags given here, and
// extra, quoted for a shell.
func (c *command) commandLine(cmd string, extra ...string) string {
	parts := []string{c.app.Name, cmd}
	for _, p := range c.specs {
		parts = append(parts, "-spec", shellQuote(p))
	}
	for _, v := range c.varFiles {
		parts = append(parts, "-var-file", shellQuote(v))
	}
	for _, v := range c.vars {
		parts = append(parts, "-var", shellQuote(v))
	}
	if c.state != "mason.state" {
		parts = append(parts, "-state", shellQuote(c.state))
	}
	for _, e := range extra {
		parts = append(parts, shellQuote(e))
	}
	return strings.Join(parts, " ")
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./=@:,+%-]+$`)

// shellQuote quotes s for a POSIX shell unless it needs none.
func shellQuote(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
	d.UseKEK(s.kek())
	s.dep.PlanRemovals(d) // nodes that left are undone and deleted
	var opts []graph.PlanOption
	if len(c.forceRemove) > 0 {
		opts = append(opts, graph.ForceRemove(c.forceRemove...))
	}
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
		return nil, nil, c.failErr("planning "+s.spec.Name, err)
	}
	return d, p, ExitOK
}

// missing returns the spec's nodes the provider does not have yet.
func (s *session) missing() []provider.NodeSpec { return s.dep.Missing() }
