package ssh

import (
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/provider/providertest"
)

// systemdMachine is a lab node booted with systemd whose sshd (itself a
// systemd unit) accepts client as root: a real machine in all that units
// touch.
func systemdMachine(t *testing.T, l *lab.Lab, name string, client gossh.PublicKey) machine {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("units over ssh need systemd lab nodes (Debian package systemd): %v", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: name, Image: provider.Image{ID: lab.ImageSystemd}})
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
	put("/etc/ssh/mason_test_sshd_config", []byte(fmt.Sprintf(sshdConfig, n.InterfaceAddr)), 0o644)
	put("/etc/ssh/mason_authorized_keys/root", gossh.MarshalAuthorizedKey(client), 0o644)
	units, err := provider.UnitsOf(n)
	require.NoError(t, err)
	_, err = units.InstallUnit(ctx, provider.Unit{
		Name:        "mason-test-sshd",
		Description: "OpenSSH server for mason's tests",
		Command:     []string{"/bin/sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f /etc/ssh/mason_test_sshd_config"},
	})
	require.NoError(t, err)
	m := machine{name: name, node: n, hostKey: hostPub}
	waitUnitSSHD(t, m)
	return m
}

// The units contract over SSH, against the machine's real systemd.
func TestUnitsContract(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := systemdMachine(t, l, "metal-sd", client.PublicKey())
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m)})
	ctx := ctxT(t)
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "sd", Name: m.name})
	require.NoError(t, err)
	providertest.RunUnits(t, n)
}

// A machine without systemd is an error that says so.
func TestUnitsNeedSystemd(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "metal-nosd", client.PublicKey(), []string{"root"}, true)
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m)})
	ctx := ctxT(t)
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "nosd", Name: m.name})
	require.NoError(t, err)
	units, err := provider.UnitsOf(n)
	require.NoError(t, err, "the ssh transport offers units")
	_, err = units.InstallUnit(ctx, provider.Unit{Name: "x", Command: []string{"/bin/true"}})
	require.ErrorContains(t, err, "systemd does not run this machine")
	_, err = units.UnitStatus(ctx, "x")
	require.ErrorContains(t, err, "systemd does not run this machine")
}

// waitUnitSSHD waits until the machine's sshd accepts TCP.
func waitUnitSSHD(t *testing.T, m machine) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", m.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "sshd on %s listens", m.addr())
}
