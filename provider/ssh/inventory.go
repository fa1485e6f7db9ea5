package ssh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/masonops/mason/provider"
)

// DriverName is the value of [provider.Node.Provider] for SSH nodes.
const DriverName = "ssh"

// DefaultUsers are the login users probed, in order, when neither the host
// nor the node spec names any.
var DefaultUsers = []string{"ubuntu", "ec2-user", "root"}

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
}

// Inventory is a provider driver over the machines in Options.Hosts. Its
// claims (which node ID holds which host) live in this value: a controller
// started later claims the same hosts again by creating the same specs.
type Inventory struct {
	opts  Options
	hosts map[string]Host

	khMu sync.Mutex // serializes known_hosts reads and TOFU appends

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
	inv := &Inventory{opts: opts, hosts: map[string]Host{}, claims: map[string]*claim{}}
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
		users = DefaultUsers
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
	return nil
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
		users = DefaultUsers
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

// describe builds the node from what the machine reports about itself.
func (inv *Inventory) describe(ctx context.Context, c *claim, user string, users []string) (*provider.Node, error) {
	addr, err := resolve(ctx, c.host.Addr)
	if err != nil {
		return nil, err
	}
	var fallbacks []string
	for _, u := range users {
		if u != user {
			fallbacks = append(fallbacks, u)
		}
	}
	n := &provider.Node{
		ID: c.id, Name: c.spec.Name, Provider: DriverName, Location: c.host.Addr, State: provider.StateRunning,
		Login:     provider.Login{User: user, Fallbacks: fallbacks},
		Labels:    map[string]string{},
		Facts:     map[string]string{},
		Transport: &Transport{conn: c.conn},
		Extra:     &c.host,
	}
	if addr.IsPrivate() || addr.IsLoopback() {
		n.PrivateAddrs = []netip.Addr{addr}
	} else {
		n.PublicAddrs = []netip.Addr{addr}
	}
	n.InterfaceAddr = provider.PickInterfaceAddr(n.PrivateAddrs, n.PublicAddrs)
	if !n.InterfaceAddr.IsValid() {
		n.InterfaceAddr = addr
	}
	for k, v := range c.host.Labels {
		n.Labels[k] = v
	}
	for k, v := range c.spec.Labels {
		n.Labels[k] = v
	}
	cmd := provider.Command{Args: []string{"sh", "-c", factsScript}, Timeout: 30 * time.Second}
	res, err := n.Transport.Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("read facts of %s: %w", c.host.Name, err)
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || v == "" {
			continue
		}
		switch k {
		case "mac":
			if mac, err := net.ParseMAC(v); err == nil {
				n.MACs = append(n.MACs, mac)
			}
		case "nproc":
			n.Flavor.VCPUs, _ = strconv.Atoi(v)
		case "memkb":
			kb, _ := strconv.Atoi(v)
			n.Flavor.RAMMiB = kb / 1024
		case "os_name":
			n.Image.Name = v
			n.Facts[k] = v
		default:
			n.Facts[k] = v
		}
	}
	if n.Facts["os_id"] != "" {
		n.Image.ID = n.Facts["os_id"] + "-" + n.Facts["os_version"]
	}
	return n, nil
}

// factsScript prints key=value lines about the machine; every probe is
// optional.
const factsScript = `echo "nproc=$(nproc 2>/dev/null)"
echo "memkb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo 2>/dev/null)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_name=$PRETTY_NAME"; fi
echo "hostname=$(hostname 2>/dev/null || uname -n)"
echo "kernel=$(uname -r)"
ip -o link 2>/dev/null | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/mac=\1/p'
exit 0`

func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(as) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	return as[0].Unmap(), nil
}

// connect dials host as the first of users that accepts our keys, retrying
// with backoff while the machine does not answer.
func (inv *Inventory) connect(ctx context.Context, host Host, users []string) (*conn, string, error) {
	var got *conn
	var user string
	op := func() error {
		var authErrs []string
		for _, u := range users {
			c, err := inv.dial(ctx, host, u)
			if err == nil {
				got, user = c, u
				return nil
			}
			var hk *HostKeyError
			switch {
			case errors.As(err, &hk):
				return backoff.Permanent(err)
			case isAuthError(err):
				authErrs = append(authErrs, u)
				continue
			default:
				return err // network trouble: retry
			}
		}
		return backoff.Permanent(fmt.Errorf("none of the users %s accepted our keys on %s: check the users and authorized_keys", strings.Join(authErrs, ", "), host.Name))
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(inv.opts.ConnectRetry))
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return nil, "", fmt.Errorf("connect to %s (%s): %w", host.Name, hostPort(host), err)
	}
	return got, user, nil
}

func isAuthError(err error) bool {
	return strings.Contains(err.Error(), "unable to authenticate")
}

func hostPort(h Host) string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// dial makes one connection attempt as user, bounded by ConnectTimeout.
func (inv *Inventory) dial(ctx context.Context, host Host, user string) (*conn, error) {
	addr := hostPort(host)
	dctx, cancel := context.WithTimeout(ctx, inv.opts.ConnectTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &gossh.ClientConfig{
		User:              user,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(inv.opts.Signers...)},
		HostKeyCallback:   inv.checkHostKey,
		HostKeyAlgorithms: inv.knownAlgorithms(addr, nc.RemoteAddr()),
		Timeout:           inv.opts.ConnectTimeout,
	}
	// Bound the handshake too, not just the TCP connect.
	deadline, _ := dctx.Deadline()
	_ = nc.SetDeadline(deadline)
	cc, chans, reqs, err := gossh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	client := gossh.NewClient(cc, chans, reqs)
	go keepAlive(client, inv.opts.KeepAlive, inv.opts.ConnectTimeout)
	return newConn(inv, host, user, client), nil
}

// probeKey is a public key no known_hosts file lists; checking it reveals
// which key types the file holds for a host.
var probeKey, _ = gossh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())

// knownAlgorithms returns the host key algorithms known_hosts has keys for
// at addr, so the server presents a key we can check: a host known by its
// RSA key would otherwise offer its ed25519 key and look changed. It
// returns nil (the library's defaults) for unknown hosts.
func (inv *Inventory) knownAlgorithms(addr string, remote net.Addr) []string {
	inv.khMu.Lock()
	defer inv.khMu.Unlock()
	cb, err := knownhosts.New(inv.opts.KnownHosts)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(cb(addr, remote, probeKey), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		names := []string{w.Key.Type()}
		if w.Key.Type() == gossh.KeyAlgoRSA {
			names = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	sort.Strings(algos) // deterministic; every listed type is acceptable
	return algos
}

// HostKeyError reports a host key that is not in the known_hosts file
// (Changed false) or differs from the one there (Changed true).
type HostKeyError struct {
	// Host is the address as dialled ("10.0.0.5:22").
	Host string
	// Fingerprint is the SHA256 fingerprint of the key the host offered.
	Fingerprint string
	// Changed is true when known_hosts has other keys for the host.
	Changed bool
}

// Error implements the error interface.
func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key of %s changed (now %s): refusing to connect; if the machine was really re-installed, remove its old line from known_hosts", e.Host, e.Fingerprint)
	}
	return fmt.Sprintf("host key of %s (%s) is not in known_hosts: refusing to connect; verify the fingerprint and add it (ssh-keyscan), or enable TrustOnFirstUse", e.Host, e.Fingerprint)
}

// checkHostKey verifies key against KnownHosts, re-reading the file each
// time so keys added by TOFU or by the user are seen.
func (inv *Inventory) checkHostKey(hostname string, remote net.Addr, key gossh.PublicKey) error {
	inv.khMu.Lock()
	defer inv.khMu.Unlock()
	cb, err := knownhosts.New(inv.opts.KnownHosts)
	if err != nil {
		return fmt.Errorf("read known_hosts %s: %w", inv.opts.KnownHosts, err)
	}
	err = cb(hostname, remote, key)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return err
	}
	hk := &HostKeyError{Host: hostname, Fingerprint: gossh.FingerprintSHA256(key), Changed: len(ke.Want) > 0}
	if hk.Changed || !inv.opts.TrustOnFirstUse {
		return hk
	}
	f, err := os.OpenFile(inv.opts.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("trust on first use: %w", err)
	}
	defer f.Close()
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("trust on first use: %w", err)
	}
	return nil
}

// keepAlive sends a keepalive request every interval and closes the client
// when one is not answered within timeout, so commands on a silently dead
// connection fail instead of hanging. It returns when the client closes.
func keepAlive(c *gossh.Client, interval, timeout time.Duration) {
	closed := make(chan struct{})
	go func() {
		_ = c.Wait()
		close(closed)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(timeout):
			c.Close() // also ends the pending SendRequest
			return
		case <-closed:
			return
		}
	}
}
