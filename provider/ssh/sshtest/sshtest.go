// Package sshtest turns a lab node into a machine reached over SSH: a
// real OpenSSH sshd with its own host key and configuration, accepting
// one client key. Tests and benchmarks of the ssh provider, and of
// anything that runs over it, use it to stand in for metal machines.
package sshtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/masonops/mason/provider"
)

// Machine is a lab node running sshd.
type Machine struct {
	Node *provider.Node
	// HostKey is the key sshd serves.
	HostKey gossh.PublicKey
}

// Addr returns host:22.
func (m Machine) Addr() string { return net.JoinHostPort(m.Node.InterfaceAddr.String(), "22") }

// KnownHostsLine is the known_hosts line trusting the machine.
func (m Machine) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(m.Addr())}, m.HostKey)
}

// Options configures Start.
type Options struct {
	// Client is the public key sshd accepts.
	Client gossh.PublicKey
	// ShellRoot makes /bin/sh root's login shell in the node (its /etc is
	// its own), so that no shell start-up file of the host's /root runs for
	// every command.
	ShellRoot bool
}

const config = `Port 22
ListenAddress %s
HostKey /etc/ssh/sshtest_host_ed25519_key
AuthorizedKeysFile /etc/ssh/sshtest_authorized_keys/%%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
MaxSessions 20
PidFile /run/sshtest-sshd.pid
LogLevel ERROR
`

// Start configures and starts sshd in the lab node n for root and waits
// until it accepts TCP connections. sshd runs in the node's PID namespace
// and ends with the node.
func Start(ctx context.Context, n *provider.Node, o Options) (Machine, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Machine{}, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		return Machine{}, err
	}
	put := func(path string, data []byte, mode os.FileMode) error {
		return n.Transport.Put(ctx, path, strings.NewReader(string(data)), provider.FileOptions{Mode: mode})
	}
	if err := put("/etc/ssh/sshtest_host_ed25519_key", pem.EncodeToMemory(block), 0o600); err != nil {
		return Machine{}, err
	}
	if err := put("/etc/ssh/sshtest_sshd_config", fmt.Appendf(nil, config, n.InterfaceAddr), 0o644); err != nil {
		return Machine{}, err
	}
	if err := put("/etc/ssh/sshtest_authorized_keys/root", gossh.MarshalAuthorizedKey(o.Client), 0o644); err != nil {
		return Machine{}, err
	}
	script := "mkdir -p /run/sshd && chmod 0755 /run/sshd && /usr/sbin/sshd -f /etc/ssh/sshtest_sshd_config"
	if o.ShellRoot {
		script = "usermod -s /bin/sh root && " + script
	}
	cmd := provider.Command{Args: []string{"sh", "-c", script}, Timeout: time.Minute}
	res, err := n.Transport.Run(ctx, cmd)
	if err == nil {
		err = res.Err(cmd)
	}
	if err != nil {
		return Machine{}, fmt.Errorf("sshtest: start sshd on %s: %w", n.Name, err)
	}
	hostPub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		return Machine{}, err
	}
	m := Machine{Node: n, HostKey: hostPub}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", m.Addr(), time.Second)
		if err == nil {
			c.Close()
			return m, nil
		}
		if time.Now().After(deadline) {
			return Machine{}, fmt.Errorf("sshtest: sshd on %s does not listen: %w", m.Addr(), err)
		}
		select {
		case <-ctx.Done():
			return Machine{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
