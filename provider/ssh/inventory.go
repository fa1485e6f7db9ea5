package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
)

// DriverName is the value of [provider.Node.Provider] for SSH nodes.
const DriverName = "ssh"

// DefaultUsers returns the login users probed, in order, when neither the
// host, the node spec nor Options.Users names any: "ubuntu", "ec2-user",
// "root". (A function, not a variable: no package state to change.)
func DefaultUsers() []string { return []string{"ubuntu", "ec2-user", "root"} }

// Host is one machine of the inventory.
type Host struct {
	// Name selects the host: a NodeSpec whose Name equals it claims it.
	Name string
	// Addr is the host's IP address or DNS name; Port defaults to 22.
	Addr string
	Port int
	// Users are the login users to try in order; empty means
	// Options.Users, then DefaultUsers.
	Users []string
	// Labels are copied to the node.
	Labels map[string]string
}

// Options configures an Inventory.
type Options struct {
	// Hosts are the machines.
	Hosts []Host
	// Users are the default login users to probe; empty means DefaultUsers.
	Users []string
	// Signers authenticate the client (public key authentication). Load
	// keys with golang.org/x/crypto/ssh.ParsePrivateKey.
	Signers []gossh.Signer
	// KnownHosts is the known_hosts file host keys are checked against.
	// It is required.
	KnownHosts string
	// TrustOnFirstUse accepts the key of a host missing from KnownHosts and
	// appends it there. A key that differs from a known one is refused all
	// the same. Off by default: turn it on only where the network between
	// controller and machines is trusted.
	TrustOnFirstUse bool
	// ConnectTimeout bounds one TCP connect plus SSH handshake; default 10s.
	ConnectTimeout time.Duration
	// ConnectRetry bounds the time spent retrying a machine that does not
	// answer (refused, unreachable, timed out); default 30s. Authentication
	// and host key failures are not retried.
	ConnectRetry time.Duration
	// MaxSessions bounds concurrent commands per machine; default 8 (below
	// OpenSSH's default MaxSessions of 10).
	MaxSessions int
	// KeepAlive is the interval of keepalive requests on idle and busy
	// connections; a connection that misses one for ConnectTimeout is
	// closed (and replaced by the next command). Default 30s.
	KeepAlive time.Duration
	// Persist, if set, keeps the connections open after this process ends,
	// in a holder process the next controller reuses them from (see
	// [Persist]).
	Persist *Persist
	// BatchWindow is how long a command marked [provider.Command.Batch]
	// waits for others to the same machine before they go as one remote
	// command (see [Transport.Run]); default 2ms, negative means no wait.
	BatchWindow time.Duration
	// Logger receives warnings (a holder that does not answer) and debug
	// messages; nil means slog.Default().
	Logger *slog.Logger
}

// Inventory is a provider driver over the machines in Options.Hosts. Its
// claims (which node ID holds which host) live in this value: a controller
// started later claims the same hosts again by creating the same specs.
type Inventory struct {
	opts  Options
	hosts map[string]Host

	kh   *knownHosts
	hold *holdClient // nil without Options.Persist

	mu     sync.Mutex
	claims map[string]*claim // by node ID
	dialed []*conn           // connections made by Dial, closed by Close
}

// claim is a host held by a node, with its shared connection.
type claim struct {
	id   string
	spec provider.NodeSpec
	host Host
	node *provider.Node // snapshot filled at claim time
	conn *conn
}

// Open checks opts and returns the inventory. It does not connect yet.
func Open(opts Options) (*Inventory, error) {
	if opts.KnownHosts == "" {
		return nil, errors.New("ssh: Options.KnownHosts is required: host keys are always verified")
	}
	if len(opts.Signers) == 0 {
		return nil, errors.New("ssh: Options.Signers is empty: give at least one private key")
	}
	if _, err := os.Stat(opts.KnownHosts); err != nil {
		if !opts.TrustOnFirstUse || !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ssh: known_hosts file: %w (create it with ssh-keyscan after checking fingerprints, or set TrustOnFirstUse)", err)
		}
		if err := os.MkdirAll(filepath.Dir(opts.KnownHosts), 0o700); err != nil {
			return nil, fmt.Errorf("ssh: known_hosts file: %w", err)
		}
		if err := os.WriteFile(opts.KnownHosts, nil, 0o600); err != nil {
			return nil, fmt.Errorf("ssh: known_hosts file: %w", err)
		}
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.ConnectRetry <= 0 {
		opts.ConnectRetry = 30 * time.Second
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 8
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.BatchWindow == 0 {
		opts.BatchWindow = 2 * time.Millisecond
	}
	inv := &Inventory{opts: opts, hosts: map[string]Host{}, claims: map[string]*claim{},
		kh: &knownHosts{path: opts.KnownHosts, tofu: opts.TrustOnFirstUse}}
	if opts.Persist != nil {
		p := opts.Persist.withDefaults()
		if p.Dir == "" {
			return nil, errors.New("ssh: Options.Persist.Dir is empty: name the holder's directory")
		}
		if p.Start && !hookCalled.Load() {
			return nil, errors.New("ssh: Options.Persist.Start needs ssh.HolderMain() called first in main (it runs this program again as the holder)")
		}
		inv.hold = &holdClient{inv: inv, p: p}
	}
	for _, h := range opts.Hosts {
		if h.Name == "" || h.Addr == "" {
			return nil, fmt.Errorf("ssh: inventory host %+v needs a Name and an Addr", h)
		}
		if _, dup := inv.hosts[h.Name]; dup {
			return nil, fmt.Errorf("ssh: inventory names host %q twice", h.Name)
		}
		if h.Port == 0 {
			h.Port = 22
		}
		inv.hosts[h.Name] = h
	}
	return inv, nil
}

// Provider returns the portable handle for this inventory.
func (inv *Inventory) Provider() *provider.Provider { return provider.New(inv) }

// Name returns "ssh".
func (inv *Inventory) Name() string { return DriverName }

// Create claims the inventory host named spec.Name for node spec.ID: it
// connects (probing login users), records what it finds, and keeps the
// connection. Creating a claimed ID again returns the node.
func (inv *Inventory) Create(ctx context.Context, spec provider.NodeSpec) (*provider.Node, error) {
	inv.mu.Lock()
	if c, ok := inv.claims[spec.ID]; ok {
		inv.mu.Unlock()
		if c.host.Name != spec.Name {
			return nil, fmt.Errorf("node %s already holds host %s, not %s", spec.ID, c.host.Name, spec.Name)
		}
		if c.node == nil {
			return nil, fmt.Errorf("node %s is being created by another call: retry", spec.ID)
		}
		return c.snapshot(), nil
	}
	host, ok := inv.hosts[spec.Name]
	if !ok {
		inv.mu.Unlock()
		return nil, fmt.Errorf("no host named %q in the inventory: add it to Options.Hosts", spec.Name)
	}
	for _, c := range inv.claims {
		if c.host.Name == host.Name {
			inv.mu.Unlock()
			return nil, fmt.Errorf("host %s is already held by node %s: delete that node first", host.Name, c.id)
		}
	}
	// Reserve the ID so a concurrent Create of the same host fails fast.
	pending := &claim{id: spec.ID, spec: spec, host: host}
	inv.claims[spec.ID] = pending
	inv.mu.Unlock()

	users := spec.Login.Candidates()
	if len(users) == 0 {
		users = host.Users
	}
	if len(users) == 0 {
		users = inv.opts.Users
	}
	if len(users) == 0 {
		users = DefaultUsers()
	}
	c, user, err := inv.connect(ctx, host, users)
	if err != nil {
		inv.mu.Lock()
		delete(inv.claims, spec.ID)
		inv.mu.Unlock()
		return nil, err
	}
	pending.conn = c
	n, err := inv.describe(ctx, pending, user, users)
	if err != nil {
		c.close()
		inv.mu.Lock()
		delete(inv.claims, spec.ID)
		inv.mu.Unlock()
		return nil, err
	}
	inv.mu.Lock()
	pending.node = n
	inv.mu.Unlock()
	return pending.snapshot(), nil
}

// Get returns the node holding a host.
func (inv *Inventory) Get(ctx context.Context, id string) (*provider.Node, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	c, ok := inv.claims[id]
	if !ok || c.node == nil {
		return nil, fmt.Errorf("ssh: %w", provider.ErrNotFound)
	}
	return c.snapshot(), nil
}

// List returns the nodes holding hosts, sorted by ID.
func (inv *Inventory) List(ctx context.Context) ([]*provider.Node, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out []*provider.Node
	for _, c := range inv.claims {
		if c.node != nil {
			out = append(out, c.snapshot())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Delete releases the node's host and closes its connection. The machine
// is left as it is.
func (inv *Inventory) Delete(ctx context.Context, id string) error {
	inv.mu.Lock()
	c, ok := inv.claims[id]
	if ok && c.node != nil {
		delete(inv.claims, id)
	}
	inv.mu.Unlock()
	if ok && c.conn != nil {
		c.conn.close()
	}
	return nil
}

// Close closes every connection and releases every claim.
func (inv *Inventory) Close() error {
	inv.mu.Lock()
	claims := inv.claims
	inv.claims = map[string]*claim{}
	inv.mu.Unlock()
	dialed := inv.dialed
	inv.dialed = nil
	for _, c := range claims {
		if c.conn != nil {
			c.conn.close()
		}
	}
	for _, c := range dialed {
		c.close()
	}
	if inv.hold != nil {
		inv.hold.close()
	}
	return nil
}

func (inv *Inventory) logger() *slog.Logger {
	if inv.opts.Logger != nil {
		return inv.opts.Logger
	}
	return slog.Default()
}

// Dial connects to a machine that is not one of the inventory's hosts — a
// VM another provider has just created — with the inventory's keys, host key
// policy and limits, probing host.Users, then Options.Users, then
// DefaultUsers. It returns the transport and the user that logged in. The
// connection is shared by every command on the transport and closed by
// Close.
func (inv *Inventory) Dial(ctx context.Context, host Host) (*Transport, string, error) {
	if host.Addr == "" {
		return nil, "", errors.New("ssh: Dial: host has no Addr")
	}
	if host.Port == 0 {
		host.Port = 22
	}
	if host.Name == "" {
		host.Name = host.Addr
	}
	users := host.Users
	if len(users) == 0 {
		users = inv.opts.Users
	}
	if len(users) == 0 {
		users = DefaultUsers()
	}
	c, user, err := inv.connect(ctx, host, users)
	if err != nil {
		return nil, "", fmt.Errorf("ssh: %w", err)
	}
	inv.mu.Lock()
	inv.dialed = append(inv.dialed, c)
	inv.mu.Unlock()
	return &Transport{conn: c}, user, nil
}

func (c *claim) snapshot() *provider.Node {
	n := *c.node
	n.Labels = map[string]string{}
	for k, v := range c.node.Labels {
		n.Labels[k] = v
	}
	return &n
}
