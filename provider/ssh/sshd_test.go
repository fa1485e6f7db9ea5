package ssh

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
)

// machine is a lab node running a real OpenSSH sshd with its own
// configuration and host key, standing in for a metal machine.
type machine struct {
	name    string
	node    *provider.Node
	hostKey gossh.PublicKey
}

func (m machine) addr() string { return net.JoinHostPort(m.node.InterfaceAddr.String(), "22") }

// newKey makes an ed25519 key pair; the private key never leaves the test.
func newKey(t *testing.T) (ed25519.PrivateKey, gossh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := gossh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return priv, s
}

// needSSH skips (outside CI) or fails (in CI) when sshd or labs are missing.
func needSSH(t *testing.T) {
	t.Helper()
	err := lab.Check()
	if err == nil {
		if _, e := os.Stat("/usr/sbin/sshd"); e != nil {
			err = fmt.Errorf("sshd missing: install Debian package openssh-server: %w", e)
		}
	}
	if err == nil {
		if _, e := exec.LookPath("useradd"); e != nil {
			err = fmt.Errorf("useradd missing (Debian package passwd): %w", e)
		}
	}
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("ssh tests run real sshd in lab nodes: %v", err)
		}
		t.Fatal(err)
	}
}

// newLab opens a lab torn down when the test ends.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	needSSH(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Open(ctx, lab.Options{Name: fmt.Sprintf("ssh-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9), Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return l
}

const sshdConfig = `Port 22
ListenAddress %s
HostKey /etc/ssh/mason_test_host_ed25519_key
AuthorizedKeysFile /etc/ssh/mason_authorized_keys/%%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes yes
MaxSessions 20
PidFile /run/mason-test-sshd.pid
LogLevel VERBOSE
`

// startMachine makes a lab node whose sshd accepts client for each of
// users (creating the users that don't exist; their homes live in the
// node's private /var/lib). With start false, sshd is configured but not
// started (see startSSHD).
// Extra host keys (of other types) are served as well.
func startMachine(t *testing.T, l *lab.Lab, name string, client gossh.PublicKey, users []string, start bool, extraHostKeys ...crypto.Signer) machine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := l.Provider()
	n, err := p.Create(ctx, provider.NodeSpec{ID: name})
	require.NoError(t, err)
	priv, _ := newKey(t)
	block, err := gossh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	hostPub, err := gossh.NewPublicKey(priv.Public())
	require.NoError(t, err)

	put := func(path string, data []byte, mode os.FileMode) {
		require.NoError(t, n.Transport.Put(ctx, path, strings.NewReader(string(data)), provider.FileOptions{Mode: mode}))
	}
	put("/etc/ssh/mason_test_host_ed25519_key", pem.EncodeToMemory(block), 0o600)
	config := fmt.Sprintf(sshdConfig, n.InterfaceAddr)
	for i, k := range extraHostKeys {
		block, err := gossh.MarshalPrivateKey(k, "")
		require.NoError(t, err)
		path := fmt.Sprintf("/etc/ssh/mason_test_host_key_%d", i)
		put(path, pem.EncodeToMemory(block), 0o600)
		config += "HostKey " + path + "\n"
	}
	put("/etc/ssh/mason_test_sshd_config", []byte(config), 0o644)
	for _, u := range users {
		if u != "root" {
			// A usable (not locked) account with no password.
			sh(t, ctx, n, fmt.Sprintf("id %[1]s >/dev/null 2>&1 || useradd -m -d /var/lib/home/%[1]s -s /bin/sh %[1]s && usermod -p '*' %[1]s", u))
		}
		put("/etc/ssh/mason_authorized_keys/"+u, gossh.MarshalAuthorizedKey(client), 0o644)
	}
	sh(t, ctx, n, "mkdir -p /run/sshd && chmod 0755 /run/sshd && /usr/sbin/sshd -t -f /etc/ssh/mason_test_sshd_config")
	m := machine{name: name, node: n, hostKey: hostPub}
	if start {
		startSSHD(t, m)
	}
	return m
}

// startSSHD starts the machine's sshd and waits until it accepts TCP.
func startSSHD(t *testing.T, m machine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sh(t, ctx, m.node, "/usr/sbin/sshd -f /etc/ssh/mason_test_sshd_config -E /var/log/mason-test-sshd.log")
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", m.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "sshd on %s listens", m.addr())
}

// sh runs a script in a lab node (as the lab's root), failing on error.
func sh(t *testing.T, ctx context.Context, n *provider.Node, script string) string {
	t.Helper()
	cmd := provider.Command{Args: []string{"sh", "-c", script}, Timeout: 30 * time.Second}
	res, err := n.Transport.Run(ctx, cmd)
	require.NoError(t, err)
	require.NoError(t, res.Err(cmd))
	return string(res.Stdout)
}

// knownHostsFile writes a known_hosts file trusting the given machines.
func knownHostsFile(t *testing.T, ms ...machine) string {
	t.Helper()
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(m.addr())}, m.hostKey) + "\n")
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

func hostOf(m machine, users ...string) Host {
	return Host{Name: m.name, Addr: m.node.InterfaceAddr.String(), Users: users}
}

// openInventory opens an inventory closed when the test ends.
func openInventory(t *testing.T, opts Options) *Inventory {
	t.Helper()
	inv, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = inv.Close() })
	return inv
}
