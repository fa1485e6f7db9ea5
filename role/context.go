package role

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/masonops/mason/provider"
)

// Context is everything a running role may use: its node, a logger, the
// application's services. Nothing is global; a role gets its Context from
// the graph, or from NewContext in tests.
type Context struct {
	deployment string
	role       string
	node       *provider.Node
	base       *slog.Logger
	// log is base tagged with the role and node, built on the first Log
	// call: most runs never log, and slog's With allocates.
	log      atomic.Pointer[slog.Logger]
	services *Services
	attempt  int
	progress func(string)
	// said is the last progress report, to drop repeats.
	said atomic.Pointer[string]
}

// ContextOptions configures NewContext.
type ContextOptions struct {
	Deployment string
	Role       string
	// Node is the node the role runs on; nil for service-scope roles.
	Node *provider.Node
	// Logger receives the role's log lines; nil discards them.
	Logger *slog.Logger
	// Services are the application's services; nil means none.
	Services *Services
	// Attempt counts runs of this node-role, starting at 1.
	Attempt int
	// Progress receives the role's progress reports (Context.Progress);
	// nil discards them. The graph turns each into an event.
	Progress func(msg string)
}

// NewContext builds a Context. The graph calls it for every run; tests call
// it to run a role directly.
func NewContext(o ContextOptions) *Context { return InitContext(new(Context), o) }

// InitContext is NewContext building the Context in c, storage the caller
// provides, and returning c: for a caller that starts many runs and keeps
// memory per run anyway, one allocation fewer per run. Whatever c held
// is overwritten. c must not be in use: a role may use its Context until
// its Run, Check or Undo returns (and so may what it started), so give
// each run its own.
func InitContext(c *Context, o ContextOptions) *Context {
	log := o.Logger
	if log == nil {
		log = discard
	}
	svcs := o.Services
	if svcs == nil {
		svcs = NewServices()
	}
	if o.Attempt == 0 {
		o.Attempt = 1
	}
	*c = Context{
		deployment: o.Deployment,
		role:       o.Role,
		node:       o.Node,
		base:       log,
		services:   svcs,
		attempt:    o.Attempt,
		progress:   o.Progress,
	}
	return c
}

// discard is the logger of a Context given none. (A Logger is immutable.)
var discard = slog.New(slog.DiscardHandler)

// Deployment returns the deployment's name.
func (c *Context) Deployment() string { return c.deployment }

// Role returns the running role's name.
func (c *Context) Role() string { return c.role }

// Node returns the node the role runs on; nil for service-scope roles.
func (c *Context) Node() *provider.Node { return c.node }

// Log returns a logger tagged with the role and node.
func (c *Context) Log() *slog.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	attrs := []any{slog.String("role", c.role)}
	if c.node != nil {
		attrs = append(attrs, slog.String("node", c.node.Name))
	}
	// Concurrent first calls may both build one; either is the same.
	c.log.CompareAndSwap(nil, c.base.With(attrs...))
	return c.log.Load()
}

// Attempt returns which run of this node-role this is, starting at 1.
func (c *Context) Attempt() int { return c.attempt }

// Services returns the application's services.
func (c *Context) Services() *Services { return c.services }

// Progress reports how a long run is getting on, in a few words that
// stand until the next report or the end of the run: "waiting for 3/5
// nodes Ready", "member-add postponed: the cluster is settling". The
// progress display shows it beside the running node-role (package
// progress), and subscribers of the graph's events receive it as an
// Event with Progress set. Report when something changes, not in a tight
// loop: a report equal to the last one is dropped. Nothing is sent when
// no one listens; never put a secret in it.
func (c *Context) Progress(format string, args ...any) {
	if c.progress == nil {
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	if last := c.said.Load(); last != nil && *last == msg {
		return
	}
	c.said.Store(&msg)
	c.progress(msg)
}

func (c *Context) transport() (provider.Transport, error) {
	if c.node == nil {
		return nil, fmt.Errorf("role %s: no node: a %s-scope role cannot run commands", c.role, ScopeService)
	}
	if c.node.Transport == nil {
		return nil, fmt.Errorf("role %s: node %s has no transport", c.role, c.node.Name)
	}
	return c.node.Transport, nil
}

// Exec runs a command on the node and returns its standard output. A
// non-zero exit status is an error that carries the command's stderr.
func (c *Context) Exec(ctx context.Context, args ...string) ([]byte, error) {
	t, err := c.transport()
	if err != nil {
		return nil, err
	}
	cmd := provider.Command{Args: args}
	res, err := t.Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", c.node.Name, err)
	}
	if err := res.Err(cmd); err != nil {
		return res.Stdout, fmt.Errorf("node %s: %w", c.node.Name, err)
	}
	return res.Stdout, nil
}

// WriteFile writes data to path on the node with the given mode (use 0600
// for keys).
func (c *Context) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	t, err := c.transport()
	if err != nil {
		return err
	}
	if err := t.Put(ctx, path, bytes.NewReader(data), provider.FileOptions{Mode: mode}); err != nil {
		return fmt.Errorf("node %s: writing %s: %w", c.node.Name, path, err)
	}
	return nil
}

// Services is the application's registry of services, keyed by type. The
// application registers implementations with Provide before planning;
// roles receive them through [Uses] fields of their input, and the
// application's own code looks them up with Lookup.
//
//	svcs := role.NewServices()
//	role.Provide[netsvc.DNS](svcs, dnsServer)
//	d.UseServices(svcs) // graph.Deployment: roles with a role.Uses[netsvc.DNS] input get it
type Services struct {
	mu sync.RWMutex
	m  map[reflect.Type]any
}

// NewServices returns an empty registry.
func NewServices() *Services { return &Services{m: map[reflect.Type]any{}} }

// Provide registers svc as the service of type T (usually an interface
// type: pass T explicitly). A second Provide for the same T replaces it.
func Provide[T any](s *Services, svc T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[reflect.TypeFor[T]()] = svc
}

// Lookup returns the service of type T from the registry. Roles declare
// the services they use as [Uses] input fields instead, so that a missing
// one fails the plan, not the run.
func Lookup[T any](s *Services) (T, error) {
	if v, ok := lookup[T](s); ok {
		return v, nil
	}
	var zero T
	return zero, fmt.Errorf("role: no service of type %v is registered; the application must call role.Provide[%v] before running", reflect.TypeFor[T](), reflect.TypeFor[T]())
}

func lookup[T any](s *Services) (T, bool) {
	s.mu.RLock()
	v, ok := s.m[reflect.TypeFor[T]()]
	s.mu.RUnlock()
	svc, isT := v.(T) // false for a nil service: Provide[T](s, nil) provides none
	return svc, ok && isT
}
