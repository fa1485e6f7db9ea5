package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// IdentityLabel is the node label in which CreateNodes stamps the identity
// of the deployment that created the node (Identity.ID).
const IdentityLabel = "mason.deployment-id"

// Purpose says what the run opening the deployment will do.
type Purpose uint8

// Purposes.
const (
	// Read looks only (plan, status, why): the state is checked, and
	// nothing is written to it.
	Read Purpose = iota
	// Apply may change the deployment: the state is checked, and a new
	// deployment's identity is recorded in it.
	Apply
	// Destroy removes the deployment: a lost state is not refused (destroy
	// is one way out of that), and nothing is recorded.
	Destroy
)

// Options say which deployment a run works on and where it is.
type Options struct {
	// Name is the deployment's name (its journal's key): 1-63 characters
	// of a-z, A-Z, 0-9, '.', '_' and '-'.
	Name string
	// Store is the deployment's state, opened by the caller.
	Store store.Store
	// Where names the state in messages: "state file /var/lib/x/state.db".
	Where string
	// Missing says the state did not exist before this run (a bbolt file
	// Open just created), for messages.
	Missing bool
	// Provider holds the deployment's nodes; nil when it has none.
	Provider *provider.Provider
	// Nodes are the nodes the deployment wants.
	Nodes []provider.NodeSpec
	// Purpose is what the run will do; the zero value is Read.
	Purpose Purpose
	// Owner names this program in locks and in the identity record ("prov
	// apply", "etcd example").
	Owner string
	// Key, if set, says where the deployment's key-encryption key is; Open
	// loads it and checks it against the state (not for Destroy).
	Key *KeySource
	// DestroyCommand, if set, is the command that destroys the deployment,
	// quoted in the refusal of a lost state ("prov destroy -yes -spec
	// etcd.hcl").
	DestroyCommand string
}

// Identity is what a state records of the deployment it belongs to, the
// first time a run may change it.
type Identity struct {
	Name string `json:"name"`
	// ID is random, chosen when the deployment was first applied; nodes
	// carry it in IdentityLabel.
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// By is who recorded it: owner, host and pid.
	By string `json:"by,omitempty"`
}

// Capacity is an optional provider capability: how many nodes it can hold
// at most (a lab: the addresses of its subnet). Open refuses a deployment
// that wants more before anything is created. Drivers implement it; Open
// finds it through provider.Provider.As.
type Capacity interface {
	Capacity() int
}

// Teardown is an optional provider capability: removing what the provider
// created besides nodes (a lab's bridge, firewall rule and directory).
// Destroy calls it when no node is left in the provider.
type Teardown interface {
	Teardown(ctx context.Context) error
}

// Deployment is one deployment opened for a run: its state checked, its
// nodes found.
type Deployment struct {
	o        Options
	id       Identity
	recorded bool             // the identity is in the state
	nodes    []*provider.Node // the provider's nodes of the deployment
	kek      *seal.KEK
	madeKey  bool // Open made the key (a new deployment)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Key is where a state keeps deployment name's records of this package
// (identity, node-creation lock).
func Key(name string) string { return "mason/deployments/" + name + "/" }

func identityKey(name string) string { return Key(name) + "identity" }

// graphPrefix is where package graph keeps the deployment's journal and
// claims.
func graphPrefix(name string) string { return "mason/graph/" + name + "/" }

// Open checks the input and the state, finds the deployment's nodes, and,
// for Purpose Apply, records a new deployment's identity. It creates
// nothing else. Errors name what is wrong and what to do; a state that lost
// the deployment while its nodes live is a *LostStateError.
func Open(ctx context.Context, o Options) (*Deployment, error) {
	if err := validate(o); err != nil {
		return nil, err
	}
	d := &Deployment{o: o}
	if err := d.readIdentity(ctx); err != nil {
		return nil, err
	}
	if o.Provider != nil {
		all, err := o.Provider.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("deploy: listing the nodes of provider %s: %w", o.Provider.Name(), err)
		}
		if err := d.checkCapacity(all); err != nil {
			return nil, err
		}
		d.nodes = d.own(all)
	}
	if o.Purpose == Destroy {
		return d, nil
	}
	newDeployment := false
	if !d.recorded {
		journal, err := d.hasJournal(ctx)
		if err != nil {
			return nil, err
		}
		if !journal && len(d.nodes) > 0 {
			return nil, d.lost(ctx)
		}
		newDeployment = !journal
	} else {
		var strangers []string
		for _, n := range d.nodes {
			if id := n.Labels[IdentityLabel]; id != "" && id != d.id.ID {
				strangers = append(strangers, n.Name)
			}
		}
		if len(strangers) > 0 {
			return nil, fmt.Errorf("deploy: nodes %s of provider %s were created by another deployment %s than the one %s records (identity %s, created %s): the state is older or newer than the nodes; restore the state that belongs to them, or destroy them",
				strings.Join(strangers, ", "), o.Provider.Name(), o.Name, where(o), d.id.ID, d.id.Created.UTC().Format(time.RFC3339))
		}
	}
	if o.Key != nil {
		if err := d.loadKey(ctx, newDeployment); err != nil {
			return nil, err
		}
	}
	if !d.recorded && o.Purpose == Apply {
		if err := d.recordIdentity(ctx); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func validate(o Options) error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("deploy: no state store"))
	}
	if !namePattern.MatchString(o.Name) {
		errs = append(errs, fmt.Errorf("deploy: deployment name %q is invalid: use 1-63 characters of a-z, A-Z, 0-9, '.', '_' and '-', starting with a letter or digit", o.Name))
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for _, ns := range o.Nodes {
		if err := ns.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if ids[ns.ID] {
			errs = append(errs, fmt.Errorf("deploy: node ID %q is wanted twice", ns.ID))
		}
		ids[ns.ID] = true
		if ns.Name != "" {
			if names[ns.Name] {
				errs = append(errs, fmt.Errorf("deploy: node name %q is wanted twice", ns.Name))
			}
			names[ns.Name] = true
		}
	}
	if len(o.Nodes) > 0 && o.Provider == nil {
		errs = append(errs, fmt.Errorf("deploy: deployment %s wants %d nodes but has no provider", o.Name, len(o.Nodes)))
	}
	return errors.Join(errs...)
}

// checkCapacity refuses more nodes than the provider can hold, counting
// the nodes it holds already.
func (d *Deployment) checkCapacity(all []*provider.Node) error {
	var c Capacity
	if d.o.Provider == nil || !d.o.Provider.As(&c) {
		return nil
	}
	have := map[string]bool{}
	for _, n := range all {
		have[n.ID] = true
	}
	need := len(all)
	for _, ns := range d.o.Nodes {
		if !have[ns.ID] {
			need++
		}
	}
	if max := c.Capacity(); need > max {
		return fmt.Errorf("deploy: deployment %s wants %d nodes, %d of them new, and provider %s holds %d nodes already; it can hold at most %d: nothing was created",
			d.o.Name, len(d.o.Nodes), need-len(all), d.o.Provider.Name(), len(all), max)
	}
	return nil
}

// own picks the provider's nodes that belong to the deployment: those it
// wants, and those stamped with its identity.
func (d *Deployment) own(all []*provider.Node) []*provider.Node {
	want := map[string]bool{}
	for _, ns := range d.o.Nodes {
		want[ns.ID] = true
	}
	var out []*provider.Node
	for _, n := range all {
		if want[n.ID] || (d.recorded && n.Labels[IdentityLabel] == d.id.ID) {
			out = append(out, n)
		}
	}
	return out
}

func (d *Deployment) readIdentity(ctx context.Context) error {
	e, err := d.o.Store.Get(ctx, identityKey(d.o.Name))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deploy: reading the identity of deployment %s from %s: %w", d.o.Name, where(d.o), err)
	}
	if err := json.Unmarshal(e.Value, &d.id); err != nil || d.id.ID == "" {
		return fmt.Errorf("deploy: %s: the identity record of deployment %s (key %s) is damaged (%v): restore the state from a backup", where(d.o), d.o.Name, identityKey(d.o.Name), err)
	}
	d.recorded = true
	return nil
}

// hasJournal reports whether the state holds records of the deployment
// from before identities were recorded.
func (d *Deployment) hasJournal(ctx context.Context) (bool, error) {
	ents, _, err := d.o.Store.List(ctx, graphPrefix(d.o.Name))
	if err != nil {
		return false, fmt.Errorf("deploy: reading %s: %w", where(d.o), err)
	}
	return len(ents) > 0, nil
}

// recordIdentity writes a new identity, or adopts the one recorded
// meanwhile by another controller, or the one the nodes carry (a state
// written before identities were recorded).
func (d *Deployment) recordIdentity(ctx context.Context) error {
	id := ""
	for _, n := range d.nodes {
		if v := n.Labels[IdentityLabel]; v != "" {
			id = v
			break
		}
	}
	if id == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("deploy: choosing an identity: %w", err)
		}
		id = hex.EncodeToString(b)
	}
	host, _ := os.Hostname()
	d.id = Identity{Name: d.o.Name, ID: id, Created: time.Now().UTC().Truncate(time.Second),
		By: fmt.Sprintf("%s (pid %d on %s)", orDefault(d.o.Owner, "mason"), os.Getpid(), host)}
	b, err := json.Marshal(d.id)
	if err != nil {
		return err
	}
	_, err = d.o.Store.CompareAndSwap(ctx, identityKey(d.o.Name), 0, b)
	if errors.Is(err, store.ErrConflict) {
		return d.readIdentity(ctx) // another controller was first: same deployment
	}
	if err != nil {
		return fmt.Errorf("deploy: recording the identity of deployment %s in %s: %w", d.o.Name, where(d.o), err)
	}
	d.recorded = true
	return nil
}

// Name returns the deployment's name.
func (d *Deployment) Name() string { return d.o.Name }

// Identity returns the deployment's identity and whether the state records
// it (a Read of a new deployment does not).
func (d *Deployment) Identity() (Identity, bool) { return d.id, d.recorded }

// Nodes returns the provider's nodes of the deployment, in the provider's
// order (by ID).
func (d *Deployment) Nodes() []*provider.Node { return slices.Clone(d.nodes) }

// Missing returns the wanted nodes the provider does not hold yet, in the
// order of Options.Nodes.
func (d *Deployment) Missing() []provider.NodeSpec {
	have := map[string]bool{}
	for _, n := range d.nodes {
		have[n.ID] = true
	}
	var out []provider.NodeSpec
	for _, ns := range d.o.Nodes {
		if !have[ns.ID] {
			out = append(out, ns)
		}
	}
	return out
}

// CreateNodes creates the missing nodes, at most four at a time, and waits
// until each is ready; created, if set, is called for each new node (from
// one goroutine at a time). It holds a lock in the state store meanwhile,
// so that two processes starting together do not both create (or take the
// other's half-made node for a crash's leftover), and looks again at what
// the provider holds once it has the lock. It returns every wanted node
// the provider holds, in the order of Options.Nodes; every error is a
// *NodeError.
func (d *Deployment) CreateNodes(ctx context.Context, created func(*provider.Node)) ([]*provider.Node, error) {
	if d.o.Purpose != Apply {
		return nil, errors.New("deploy: CreateNodes needs a deployment opened for Apply")
	}
	if len(d.Missing()) > 0 {
		l, err := store.Acquire(ctx, d.o.Store, Key(d.o.Name)+"lock/nodes", lockOwner(d.o.Owner), 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("deploy: locking node creation of %s in %s: %w", d.o.Name, where(d.o), err)
		}
		defer func() { _ = l.Release(context.Background()) }()
		all, err := d.o.Provider.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("deploy: listing the nodes of provider %s: %w", d.o.Provider.Name(), err)
		}
		d.nodes = d.own(all)
	}
	missing := d.Missing()
	made := make([]*provider.Node, len(missing))
	errs := make([]error, len(missing))
	var g errgroup.Group
	g.SetLimit(4)
	report := make(chan *provider.Node)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := range report {
			if created != nil {
				created(n)
			}
		}
	}()
	for i, ns := range missing {
		g.Go(func() error {
			ns.Labels = withLabel(ns.Labels, IdentityLabel, d.id.ID)
			if _, err := d.o.Provider.Create(ctx, ns); err != nil {
				errs[i] = &NodeError{Node: ns.Name, Err: err}
				return nil
			}
			n, err := d.o.Provider.WaitReady(ctx, ns.ID)
			if err != nil {
				errs[i] = &NodeError{Node: ns.Name, Err: err}
				return nil
			}
			made[i] = n
			report <- n
			return nil
		})
	}
	_ = g.Wait()
	close(report)
	<-done
	for _, n := range made {
		if n != nil {
			d.nodes = append(d.nodes, n)
		}
	}
	byID := map[string]*provider.Node{}
	for _, n := range d.nodes {
		byID[n.ID] = n
	}
	var out []*provider.Node
	for _, ns := range d.o.Nodes {
		if n := byID[ns.ID]; n != nil {
			out = append(out, n)
		}
	}
	return out, errors.Join(errs...)
}

// NodeError is a failure to create or delete one node.
type NodeError struct {
	Node string
	Err  error
}

// Error implements error.
func (e *NodeError) Error() string { return "node " + e.Node + ": " + e.Err.Error() }

// Unwrap returns the provider's error.
func (e *NodeError) Unwrap() error { return e.Err }

func withLabel(labels map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for lk, lv := range labels {
		out[lk] = lv
	}
	out[k] = v
	return out
}

func lockOwner(owner string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (pid %d on %s)", orDefault(owner, "mason"), os.Getpid(), host)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func where(o Options) string { return orDefault(o.Where, "the state") }
