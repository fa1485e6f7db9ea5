package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// ErrNotFound is wrapped by errors for nodes that do not exist.
var ErrNotFound = errors.New("node not found")

// NodeSpec asks a provider for one node.
type NodeSpec struct {
	// ID is chosen by the caller before creation (see [StableID]); creating
	// a spec whose ID already exists returns the existing node. IDs are 1 to
	// 63 characters of [a-z0-9-], starting with a letter or digit.
	ID string
	// Name is the node's hostname; it defaults to ID.
	Name string
	// Labels are copied to the node.
	Labels map[string]string
	// Flavor and Image are requests; drivers that cannot honour them say so
	// in their documentation (the lab ignores them, ssh reports what it finds).
	Flavor Flavor
	Image  Image
	// Login overrides the driver's default login users, where it has any.
	Login Login
	// Deployment, when set, stamps the node with the deployment it belongs
	// to (as the label LabelDeployment), so that a controller whose state
	// is lost can still tell which nodes are its deployment's ([Node.Deployment],
	// [Provider.DeploymentNodes]). Creating an existing node of another
	// deployment is refused.
	Deployment string
}

// LabelDeployment is the label that carries a node's deployment.
const LabelDeployment = "mason.deployment"

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks the spec's ID and Name.
func (s NodeSpec) Validate() error {
	if !idPattern.MatchString(s.ID) {
		return fmt.Errorf("provider: node ID %q is invalid: use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit (see provider.StableID)", s.ID)
	}
	if s.Name != "" && !idPattern.MatchString(s.Name) {
		return fmt.Errorf("provider: node name %q is invalid: use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit", s.Name)
	}
	if len(s.Deployment) > 128 || hasControl(s.Deployment) {
		return fmt.Errorf("provider: node %s: deployment %q is invalid: use at most 128 printable characters", s.ID, s.Deployment)
	}
	if d, ok := s.Labels[LabelDeployment]; ok && s.Deployment != "" && d != s.Deployment {
		return fmt.Errorf("provider: node %s: label %s=%q contradicts Deployment %q", s.ID, LabelDeployment, d, s.Deployment)
	}
	return nil
}

// StableID derives a node ID from the names that identify a node in a
// deployment, so every controller computes the same ID for the same node.
func StableID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return "n" + hex.EncodeToString(h.Sum(nil))[:15]
}

// Driver is the narrow interface provider implementations write. Users hold
// a [*Provider], which wraps a Driver and adds validation, readiness and
// consistent errors.
//
// All methods must be safe for concurrent use and idempotent: Create with
// an existing ID returns that node, Delete of a missing ID succeeds.
type Driver interface {
	// Name is the driver's name as it appears in [Node.Provider].
	Name() string
	// Create makes (or finds) the node spec.ID and returns it once its
	// State is running or it failed. spec has been validated.
	Create(ctx context.Context, spec NodeSpec) (*Node, error)
	// Get returns the node, or an error wrapping [ErrNotFound].
	Get(ctx context.Context, id string) (*Node, error)
	// List returns every node this driver's scope holds, sorted by ID.
	List(ctx context.Context) ([]*Node, error)
	// Delete removes the node and everything it holds.
	Delete(ctx context.Context, id string) error
}

// Provider is the portable handle users hold to create, find and delete
// nodes, whatever driver is behind it.
type Provider struct {
	d Driver
}

// New wraps a driver. Driver packages usually offer their own constructor
// that returns a *Provider.
func New(d Driver) *Provider { return &Provider{d: d} }

// Name returns the driver's name.
func (p *Provider) Name() string { return p.d.Name() }

// Create makes the node described by spec, or returns it if a node with
// spec.ID exists already. The node may not be [Ready] yet; use
// [Provider.WaitReady].
func (p *Provider) Create(ctx context.Context, spec NodeSpec) (*Node, error) {
	if spec.Name == "" {
		spec.Name = spec.ID
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Deployment != "" {
		labels := make(map[string]string, len(spec.Labels)+1)
		for k, v := range spec.Labels {
			labels[k] = v
		}
		labels[LabelDeployment] = spec.Deployment
		spec.Labels = labels
	}
	n, err := p.d.Create(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("%s: create node %s: %w", p.d.Name(), spec.ID, err)
	}
	if d := n.Deployment(); spec.Deployment != "" && d != "" && d != spec.Deployment {
		return nil, fmt.Errorf("%s: create node %s: it exists and belongs to deployment %q, not %q: choose other node IDs or destroy that deployment", p.d.Name(), spec.ID, d, spec.Deployment)
	}
	return n, nil
}

// DeploymentNodes returns the nodes stamped with deployment (see
// NodeSpec.Deployment), sorted by ID.
func (p *Provider) DeploymentNodes(ctx context.Context, deployment string) ([]*Node, error) {
	all, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Node
	for _, n := range all {
		if n.Deployment() == deployment {
			out = append(out, n)
		}
	}
	return out, nil
}

// ErrNoCapacity is wrapped by errors for requests beyond what a provider
// can hold.
var ErrNoCapacity = errors.New("not enough capacity")

// Capacity is how many more nodes a provider can make.
type Capacity struct {
	// Free is how many more nodes fit.
	Free int
	// Limit says what bounds it ("subnet 10.200.7.0/24: 253 addresses, 3 in use").
	Limit string
}

// CapacityReporter is the optional Driver capability of knowing how many
// more nodes fit, so that impossible requests are refused before the
// first node is made.
type CapacityReporter interface {
	Capacity(ctx context.Context) (Capacity, error)
}

// Capacity returns how many more nodes the provider can make; ok is false
// when its driver cannot tell.
func (p *Provider) Capacity(ctx context.Context) (c Capacity, ok bool, err error) {
	cr, ok := p.d.(CapacityReporter)
	if !ok {
		return Capacity{}, false, nil
	}
	c, err = cr.Capacity(ctx)
	if err != nil {
		return Capacity{}, true, fmt.Errorf("%s: capacity: %w", p.d.Name(), err)
	}
	return c, true, nil
}

// CheckCapacity reports, before anything is created, whether the nodes
// with the given IDs fit: those that exist already need no room; the
// others must not exceed [Provider.Capacity]. The error wraps
// [ErrNoCapacity]. A driver that cannot tell its capacity passes.
func (p *Provider) CheckCapacity(ctx context.Context, ids []string) error {
	c, ok, err := p.Capacity(ctx)
	if err != nil || !ok {
		return err
	}
	have, err := p.List(ctx)
	if err != nil {
		return err
	}
	exists := make(map[string]bool, len(have))
	for _, n := range have {
		exists[n.ID] = true
	}
	need := 0
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !exists[id] && !seen[id] {
			need++
		}
		seen[id] = true
	}
	if need > c.Free {
		return fmt.Errorf("%s: %d new nodes requested but only %d fit (%s): ask for fewer or give the provider more room: %w",
			p.d.Name(), need, c.Free, c.Limit, ErrNoCapacity)
	}
	return nil
}

// Get returns the node with the given ID, or an error wrapping
// [ErrNotFound].
func (p *Provider) Get(ctx context.Context, id string) (*Node, error) {
	n, err := p.d.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%s: get node %s: %w", p.d.Name(), id, err)
	}
	return n, nil
}

// List returns every node the provider holds, sorted by ID.
func (p *Provider) List(ctx context.Context) ([]*Node, error) {
	ns, err := p.d.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: list nodes: %w", p.d.Name(), err)
	}
	return ns, nil
}

// Delete removes the node. Deleting a node that does not exist succeeds.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if err := p.d.Delete(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s: delete node %s: %w", p.d.Name(), id, err)
	}
	return nil
}

// WaitReady polls the node until it is [Ready] or ctx ends, and returns the
// last snapshot of it.
func (p *Provider) WaitReady(ctx context.Context, id string) (*Node, error) {
	var last *Node
	var lastErr error
	op := func() error {
		n, err := p.Get(ctx, id)
		if err != nil {
			lastErr = err
			if errors.Is(err, ErrNotFound) {
				return backoff.Permanent(err)
			}
			return err
		}
		last = n
		if n.State == StateFailed {
			lastErr = fmt.Errorf("node %s failed", id)
			return backoff.Permanent(lastErr)
		}
		lastErr = Ready(ctx, n)
		return lastErr
	}
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(20*time.Millisecond), backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(0))
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		if lastErr == nil {
			lastErr = err
		}
		return last, fmt.Errorf("%s: node %s not ready: %w", p.d.Name(), id, lastErr)
	}
	return last, nil
}

// As gives access to the driver's own type (for example *lab.Lab), in the
// style of the Go CDK. target must be a non-nil pointer.
func (p *Provider) As(target any) bool {
	if target == nil {
		return false
	}
	if a, ok := p.d.(interface{ As(any) bool }); ok && a.As(target) {
		return true
	}
	return assignTo(p.d, target)
}

// Close releases the driver's resources (connections, locks). Nodes are
// not deleted.
func (p *Provider) Close() error {
	if c, ok := p.d.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Ready reports why n is not ready, or nil when it is: a node is ready when
// its State is running, it has an interface address, and its transport
// answers a trivial command within ten seconds.
func Ready(ctx context.Context, n *Node) error {
	switch {
	case n == nil:
		return errors.New("no node")
	case n.State != StateRunning:
		return fmt.Errorf("node %s is %q, not running", n.ID, n.State)
	case !n.InterfaceAddr.IsValid():
		return fmt.Errorf("node %s has no interface address yet", n.ID)
	case n.Transport == nil:
		return fmt.Errorf("node %s has no transport yet", n.ID)
	}
	cmd := Command{Args: []string{"true"}, Timeout: 10 * time.Second}
	res, err := n.Transport.Run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("node %s transport does not answer: %w", n.ID, err)
	}
	if err := res.Err(cmd); err != nil {
		return fmt.Errorf("node %s transport does not answer: %w", n.ID, err)
	}
	return nil
}
