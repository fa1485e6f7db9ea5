package vsphere

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/masonops/mason/breaker"
	"github.com/masonops/mason/provider"
)

// Secret holds a credential. It prints as "[redacted]" in every format
// verb and in JSON, so a Config can be logged or wrapped into an error
// without leaking the password.
type Secret string

// String returns "[redacted]" (or "" for an empty secret).
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret in %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText redacts the secret in JSON, XML and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// IPConfig is a fixed address for a node's first network interface. The
// zero IPConfig means DHCP.
type IPConfig struct {
	// Addr is the address and its prefix length (10.20.0.11/24).
	Addr netip.Prefix
	// Gateway is the default gateway; zero means none.
	Gateway netip.Addr
}

// Config says which vCenter to talk to, as whom, and where nodes go.
// [ConfigFromEnv] fills the connection and placement fields from the
// environment.
type Config struct {
	// URL is the vCenter SDK endpoint ("https://vc.example.com/sdk"); a
	// bare host name means https://HOST/sdk. Credentials in the URL are
	// moved to Username and Password and never printed.
	URL string
	// Username and Password log in to vCenter.
	Username string
	Password Secret
	// CAFile names PEM files (separated like PATH) of the authorities that
	// sign vCenter's certificate, when the system's roots do not.
	CAFile string
	// Thumbprint pins vCenter's certificate by its SHA-1 thumbprint (as
	// govc and vCenter show it: "AB:CD:..."), for self-signed vCenters.
	Thumbprint string
	// Insecure skips certificate verification entirely. Prefer Thumbprint.
	Insecure bool

	// Datacenter is the datacenter's name or path; empty means the only one.
	Datacenter string
	// Template is the VM or template nodes are cloned from (name or
	// inventory path). NodeSpec.Image.Name overrides it per node. If it
	// has a current snapshot, nodes are linked clones of that snapshot.
	Template string
	// FullClone forces full clones even when the template has a snapshot.
	FullClone bool
	// Folder is the deployment's VM folder (inventory path, for example
	// "/DC0/vm/mason/prod"); it is created if missing. Every node of this
	// driver lives there and List lists exactly that folder. Required.
	Folder string
	// ResourcePool is the pool for new VMs; empty means the root pool of
	// the template's cluster or host.
	ResourcePool string
	// Datastore is where new VMs' disks go; empty means the template's.
	Datastore string
	// Network, if set, connects the first network card to this network
	// (name or path); otherwise cards keep the template's networks.
	Network string

	// SkipCustomization turns off vSphere guest customization (Linux
	// prep), which otherwise sets the hostname and, when AssignIP returns
	// one, a fixed address. Templates that cannot be customized (no VMware
	// Tools) set it and rely on cloud-init alone.
	SkipCustomization bool
	// Domain is the DNS domain given to customization; default "local".
	Domain string
	// DNSServers go to the customized node's resolver.
	DNSServers []netip.Addr
	// AssignIP chooses the fixed address of a node; nil, or a zero
	// IPConfig, means DHCP. It must return the same address for the same
	// spec.ID every time (a retried Create calls it again).
	AssignIP func(ctx context.Context, spec provider.NodeSpec) (IPConfig, error)
	// InterfacePrefixes, if set, choose the node's interface address (see
	// provider.PickInterfaceAddr).
	InterfacePrefixes []netip.Prefix

	// User is the login user cloud-init creates; default "mason".
	// NodeSpec.Login.User overrides it.
	User string
	// SSHAuthorizedKeys are public keys cloud-init authorizes for User.
	SSHAuthorizedKeys []string
	// UserData, if set, replaces the generated cloud-config user data.
	UserData string

	// IPTimeout bounds the wait for a powered-on node to report an
	// address through VMware Tools; default 10 minutes.
	IPTimeout time.Duration
	// PollInterval is the first wait between address polls and between
	// retries of failed vCenter calls; it doubles up to MaxPollInterval.
	// Defaults 1s and 15s.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// RetryFor bounds how long one vCenter operation is retried after
	// transient faults; default 2 minutes.
	RetryFor time.Duration
	// Breaker configures the circuit breaker around every vCenter call.
	// Its Name defaults to "vcenter HOST".
	Breaker breaker.Options

	// Transport, if set, returns the transport for a node that has an
	// interface address (for example an SSH transport to n.InterfaceAddr
	// as n.Login.User). Without it nodes have no Transport.
	Transport func(ctx context.Context, n *provider.Node) (provider.Transport, error)

	// Logger receives one line per step; nil discards. Secrets are never
	// logged.
	Logger *slog.Logger
}

// String describes the connection and placement without credentials.
func (c Config) String() string {
	u := c.URL
	if p, err := url.Parse(c.URL); err == nil {
		u = p.Redacted()
	} else if strings.Contains(c.URL, "@") {
		u = "[unparsable URL redacted]"
	}
	return fmt.Sprintf("vsphere.Config{URL:%q Username:%q Password:%q Datacenter:%q Template:%q Folder:%q}",
		u, c.Username, c.Password, c.Datacenter, c.Template, c.Folder)
}

// GoString is String, so %#v does not print credentials either.
func (c Config) GoString() string { return c.String() }

// Environment variables read by [ConfigFromEnv].
const (
	EnvURL          = "MASON_VSPHERE_URL"
	EnvUsername     = "MASON_VSPHERE_USERNAME"
	EnvPassword     = "MASON_VSPHERE_PASSWORD"
	EnvCAFile       = "MASON_VSPHERE_CA_FILE"
	EnvThumbprint   = "MASON_VSPHERE_THUMBPRINT"
	EnvInsecure     = "MASON_VSPHERE_INSECURE"
	EnvDatacenter   = "MASON_VSPHERE_DATACENTER"
	EnvTemplate     = "MASON_VSPHERE_TEMPLATE"
	EnvFolder       = "MASON_VSPHERE_FOLDER"
	EnvResourcePool = "MASON_VSPHERE_RESOURCE_POOL"
	EnvDatastore    = "MASON_VSPHERE_DATASTORE"
	EnvNetwork      = "MASON_VSPHERE_NETWORK"
)

// ConfigFromEnv reads the connection and placement settings from the
// MASON_VSPHERE_* variables (see the Env constants). Unset variables leave
// fields empty; [Open] says which required ones are missing.
func ConfigFromEnv() (Config, error) {
	c := Config{
		URL:          os.Getenv(EnvURL),
		Username:     os.Getenv(EnvUsername),
		Password:     Secret(os.Getenv(EnvPassword)),
		CAFile:       os.Getenv(EnvCAFile),
		Thumbprint:   os.Getenv(EnvThumbprint),
		Datacenter:   os.Getenv(EnvDatacenter),
		Template:     os.Getenv(EnvTemplate),
		Folder:       os.Getenv(EnvFolder),
		ResourcePool: os.Getenv(EnvResourcePool),
		Datastore:    os.Getenv(EnvDatastore),
		Network:      os.Getenv(EnvNetwork),
	}
	if v := os.Getenv(EnvInsecure); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("vsphere: %s=%q is not a boolean: use true or false", EnvInsecure, v)
		}
		c.Insecure = b
	}
	return c, nil
}

// endpoint parses c.URL into an SDK URL without credentials, moving any
// credentials it carried into c.
func (c *Config) endpoint() (*url.URL, error) {
	raw := strings.TrimSpace(c.URL)
	if raw == "" {
		return nil, fmt.Errorf("vsphere: no vCenter URL: set Config.URL or %s", EnvURL)
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input, which may hold a password.
		return nil, fmt.Errorf("vsphere: vCenter URL is not a valid URL: set Config.URL or %s to https://HOST/sdk", EnvURL)
	}
	if u.User != nil {
		if c.Username == "" {
			c.Username = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && c.Password == "" {
			c.Password = Secret(p)
		}
		u.User = nil
	}
	if u.Host == "" {
		return nil, fmt.Errorf("vsphere: vCenter URL %s has no host: use https://HOST/sdk", u.Redacted())
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}

func (c *Config) setDefaults() {
	if c.Domain == "" {
		c.Domain = "local"
	}
	if c.User == "" {
		c.User = "mason"
	}
	if c.IPTimeout <= 0 {
		c.IPTimeout = 10 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.MaxPollInterval <= 0 {
		c.MaxPollInterval = 15 * time.Second
	}
	if c.MaxPollInterval < c.PollInterval {
		c.MaxPollInterval = c.PollInterval
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
