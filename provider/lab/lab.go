package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
)

// DriverName is the value of [provider.Node.Provider] for lab nodes.
const DriverName = "lab"

// DefaultRoot is the directory under which labs keep their state when
// Options.Dir is empty: /var/lib/mason/labs/NAME.
const DefaultRoot = "/var/lib/mason/labs"

// Options configures a lab.
type Options struct {
	// Name identifies the lab (1-40 characters of a-z, 0-9, '-'). Opening
	// the same Name and Dir again, from any process, finds the same lab.
	Name string
	// Dir holds the lab's state file and its nodes' private directories.
	// Empty means DefaultRoot/Name.
	Dir string
	// Subnet is the lab's IPv4 range (a /16 to /29). Empty means: pick a
	// free /24 in 10.200.0.0 - 10.250.255.0 that is neither routed nor
	// assigned on this host. It must not overlap anything routed here.
	Subnet netip.Prefix
}

// Lab is a set of nodes made of Linux namespaces on this machine, joined by
// one bridge that the lab owns. It implements [provider.Driver]; use
// [Lab.Provider] for the portable handle.
//
// A Lab value is safe for concurrent use, and several processes may open
// the same lab: every change to its state holds a file lock.
type Lab struct {
	name    string
	dir     string
	bridge  string
	subnet  netip.Prefix
	gateway netip.Addr
}

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	nodeIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) // provider.NodeSpec's rule
)

// requiredTools are the host programs a lab runs.
var requiredTools = []string{"ip", "nsenter", "iptables", "mount", "sh"}

// Check reports whether this process can run labs: it must be root and
// find ip (iproute2), nsenter and mount (util-linux), iptables and sh.
func Check() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("lab: needs root to create namespaces, bridges and firewall rules (running as uid %d): run as root", uid)
	}
	var missing []string
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: missing tools %s in PATH: install Debian packages iproute2, util-linux and iptables", strings.Join(missing, ", "))
	}
	return nil
}

// Open opens the lab named in opts, creating its directory, bridge and
// firewall rule if they do not exist yet. Opening an existing lab (for
// example after the controller crashed) picks up its nodes and subnet.
func Open(ctx context.Context, opts Options) (*Lab, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if !namePattern.MatchString(opts.Name) {
		return nil, fmt.Errorf("lab: name %q is invalid: use 1-40 characters of a-z, 0-9 and '-'", opts.Name)
	}
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Join(DefaultRoot, opts.Name)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lab %s: directory: %w", opts.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "nodes"), 0o700); err != nil {
		return nil, fmt.Errorf("lab %s: create directory: %w", opts.Name, err)
	}
	if opts.Subnet.IsValid() {
		if !opts.Subnet.Addr().Is4() || opts.Subnet.Bits() < 16 || opts.Subnet.Bits() > 29 {
			return nil, fmt.Errorf("lab %s: subnet %s must be IPv4, /16 to /29", opts.Name, opts.Subnet)
		}
	}
	l := &Lab{name: opts.Name, dir: dir, bridge: "mb" + shortHash(dir)}

	err = l.withState(true, func(st *labState) error {
		if st.Name == "" {
			st.Name = opts.Name
			st.Bridge = l.bridge
		}
		if st.Name != opts.Name {
			return fmt.Errorf("directory %s belongs to lab %q", dir, st.Name)
		}
		if st.Subnet.IsValid() && opts.Subnet.IsValid() && st.Subnet != opts.Subnet.Masked() {
			return fmt.Errorf("lab already uses subnet %s, not %s", st.Subnet, opts.Subnet)
		}
		return l.ensureNetwork(ctx, st, opts.Subnet)
	})
	if err != nil {
		return nil, fmt.Errorf("lab %s: open: %w", opts.Name, err)
	}
	return l, nil
}

var _ provider.CapacityReporter = (*Lab)(nil)

// Remove tears down the lab named in opts, if anything of it is left,
// without creating anything first (Open would make its directory, bridge
// and firewall rule): what a destroy command should call. It works when
// the lab's directory is gone, its state file is corrupt, or nodes died.
func Remove(ctx context.Context, opts Options) error {
	if err := Check(); err != nil {
		return err
	}
	if !namePattern.MatchString(opts.Name) {
		return fmt.Errorf("lab: name %q is invalid: use 1-40 characters of a-z, 0-9 and '-'", opts.Name)
	}
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Join(DefaultRoot, opts.Name)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("lab %s: directory: %w", opts.Name, err)
	}
	if st, err := readState(dir); err == nil && st.Name != "" && st.Name != opts.Name {
		return fmt.Errorf("lab %s: directory %s belongs to lab %q: nothing removed", opts.Name, dir, st.Name)
	}
	l := &Lab{name: opts.Name, dir: dir, bridge: "mb" + shortHash(dir)}
	return l.Teardown(ctx)
}

// Provider returns the portable handle for this lab.
func (l *Lab) Provider() *provider.Provider { return provider.New(l) }

// Name returns "lab", the driver's name; see [Lab.LabName] for the lab's own.
func (l *Lab) Name() string { return DriverName }

// LabName returns the name the lab was opened with.
func (l *Lab) LabName() string { return l.name }

// Dir returns the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

// Bridge returns the name of the lab's bridge on the host.
func (l *Lab) Bridge() string { return l.bridge }

// Subnet returns the lab's address range.
func (l *Lab) Subnet() netip.Prefix { return l.subnet }

// Gateway returns the host's own address on the lab bridge. Nodes reach
// the host (and only the host) through it; it is not a default route.
func (l *Lab) Gateway() netip.Addr { return l.gateway }

// ensureNetwork picks the subnet (once) and makes sure the bridge and the
// FORWARD rule exist. Subnet choice and bridge creation happen under a
// host-wide lock so concurrent labs never pick the same range.
func (l *Lab) ensureNetwork(ctx context.Context, st *labState, want netip.Prefix) error {
	hl, err := os.OpenFile("/run/mason-lab.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open host lock: %w", err)
	}
	defer hl.Close()
	if err := unix.Flock(int(hl.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock host: %w", err)
	}

	exists := linkExists(l.bridge)
	if !st.Subnet.IsValid() {
		taken, err := hostPrefixes(ctx)
		if err != nil {
			return err
		}
		if want.IsValid() {
			want = want.Masked()
			for _, p := range taken {
				if p.Overlaps(want) {
					return fmt.Errorf("subnet %s overlaps %s, which is routed or assigned on this host: choose another", want, p)
				}
			}
			st.Subnet = want
		} else {
			st.Subnet, err = pickSubnet(taken)
			if err != nil {
				return err
			}
		}
		st.Gateway = st.Subnet.Addr().Next()
	}
	l.subnet, l.gateway = st.Subnet, st.Gateway

	if !exists {
		gw := netip.PrefixFrom(st.Gateway, st.Subnet.Bits()).String()
		if err := run(ctx, nil, "ip", "link", "add", l.bridge, "type", "bridge"); err != nil {
			return err
		}
		if err := run(ctx, nil, "ip", "addr", "add", gw, "dev", l.bridge); err != nil {
			return err
		}
		if err := run(ctx, nil, "ip", "link", "set", l.bridge, "up"); err != nil {
			return err
		}
	}
	// Bridged frames pass the FORWARD chain when br_netfilter is loaded
	// (dockerd loads it and sets the policy to DROP). Accept traffic that
	// enters and leaves this bridge, nothing else.
	if err := run(ctx, nil, "iptables", l.forwardRule("-C")...); err != nil {
		if err := run(ctx, nil, "iptables", l.forwardRule("-I")...); err != nil {
			return fmt.Errorf("allow forwarding on lab bridge: %w", err)
		}
	}
	return nil
}

func (l *Lab) forwardRule(op string) []string {
	return []string{"-w", "5", op, "FORWARD", "-i", l.bridge, "-o", l.bridge, "-j", "ACCEPT"}
}

// pickSubnet picks a random /24 in 10.200.0.0-10.250.255.0 that overlaps
// nothing in taken.
func pickSubnet(taken []netip.Prefix) (netip.Prefix, error) {
	for range 500 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + rand.IntN(51)), byte(rand.IntN(256)), 0}), 24)
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 in 10.200.0.0-10.250.255.0 on this host: set Options.Subnet")
}

// hostPrefixes lists every IPv4 destination routed in any routing table and
// every IPv4 address assigned on this host, except the default route (a
// lab subnet is never routed through it because the bridge's connected
// route is more specific and lab nodes have no default route).
func hostPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var routes []struct {
		Dst string `json:"dst"`
	}
	out, err := output(ctx, "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("parse ip route output: %w", err)
	}
	var ps []netip.Prefix
	for _, r := range routes {
		if r.Dst == "default" || r.Dst == "" {
			continue
		}
		if !strings.Contains(r.Dst, "/") {
			r.Dst += "/32"
		}
		if p, err := netip.ParsePrefix(r.Dst); err == nil {
			ps = append(ps, p.Masked())
		}
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	out, err = output(ctx, "ip", "-j", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("parse ip addr output: %w", err)
	}
	for _, li := range links {
		for _, a := range li.AddrInfo {
			if ad, err := netip.ParseAddr(a.Local); err == nil {
				ps = append(ps, netip.PrefixFrom(ad, a.PrefixLen).Masked())
			}
		}
	}
	return ps, nil
}

// Teardown deletes every node of the lab (each with every process in its
// namespaces), the FORWARD rule, the bridge and the lab's directory. It
// works from any process, also after the process that created the nodes
// was killed, when nodes are already gone, and when the state file is
// lost or corrupt (nodes are found by their directories and their inits'
// markers too). It waits for Creates and Deletes in flight, in any
// process, and later ones fail. The Lab must not be used afterwards.
func (l *Lab) Teardown(ctx context.Context) error {
	var errs *multierror.Error
	unlock, err := flockCtx(ctx, filepath.Join(l.dir, useLock), unix.LOCK_EX)
	if errors.Is(err, errTornDown) {
		unlock, err = func() {}, nil
	}
	if err != nil {
		return fmt.Errorf("lab %s: teardown: %w", l.name, err)
	}
	defer unlock()

	ids := map[string]bool{}
	err = l.withState(false, func(st *labState) error {
		for _, id := range st.sortedIDs() {
			ids[id] = true
		}
		return nil
	})
	var corrupt *corruptStateError
	if errors.As(err, &corrupt) {
		// What it held is found below from the nodes' directories; the
		// file goes aside so that deletes can record their progress.
		err = os.Rename(corrupt.path, corrupt.path+".corrupt")
	}
	if err != nil && !errors.Is(err, errTornDown) {
		errs = multierror.Append(errs, err)
	}
	if ents, err := os.ReadDir(filepath.Join(l.dir, "nodes")); err == nil {
		for _, e := range ents {
			if e.IsDir() && nodeIDPattern.MatchString(e.Name()) {
				ids[e.Name()] = true
			}
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	for _, id := range sorted {
		if err := l.deleteNode(ctx, id); err != nil && !errors.Is(err, errTornDown) {
			errs = multierror.Append(errs, err)
		}
	}
	// Nodes whose records and directories were lost still carry the
	// lab's marker (or, booted with systemd, sit in the lab's cgroup).
	for _, pid := range findInits(l.dir, "") {
		if err := stopInit(ctx, pid, unix.SIGTERM); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	if err := l.removeLabCgroup(ctx); err != nil {
		errs = multierror.Append(errs, err)
	}
	for run(ctx, nil, "iptables", l.forwardRule("-C")...) == nil {
		if err := run(ctx, nil, "iptables", l.forwardRule("-D")...); err != nil {
			errs = multierror.Append(errs, err)
			break
		}
	}
	if linkExists(l.bridge) {
		if err := run(ctx, nil, "ip", "link", "del", l.bridge); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	if errs.ErrorOrNil() == nil {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("remove lab directory: %w", err))
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return fmt.Errorf("lab %s: teardown (run it again to retry): %w", l.name, err)
	}
	return nil
}

// Capacity implements [provider.CapacityReporter]: a lab holds one node
// per free address of its subnet.
func (l *Lab) Capacity(ctx context.Context) (provider.Capacity, error) {
	var c provider.Capacity
	err := l.withState(false, func(st *labState) error {
		total := st.hostAddrs()
		c.Free = max(total-len(st.Nodes), 0)
		c.Limit = fmt.Sprintf("lab %s: subnet %s has %d node addresses, %d in use", l.name, st.Subnet, total, len(st.Nodes))
		return nil
	})
	return c, err
}

// shortHash is 10 hex digits of s's SHA-256, for interface names (at most
// 15 bytes on Linux).
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:5])
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

// run runs a host command, returning an error with its stderr.
func run(ctx context.Context, stdin []byte, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
