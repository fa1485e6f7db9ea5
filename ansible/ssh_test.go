package ansible

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/ssh"
	"github.com/masonops/mason/provider/ssh/sshtest"
	"github.com/masonops/mason/role"
)

// The same role on a machine reached over SSH: Ansible's commands and
// files go through the ssh provider's connection (one connection, its
// host key verified), not through a second SSH client of Ansible's.
func TestPlaybookOverSSH(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		needAnsible(t)
		if os.Getenv("CI") == "" {
			t.Skip("sshd missing: install Debian package openssh-server")
		}
		t.Fatal("sshd missing: install Debian package openssh-server")
	}
	ctx := ctxT(t)
	labNode := labNode(t, "metal-1")[0]
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := gossh.NewSignerFromKey(priv)
	require.NoError(t, err)
	m, err := sshtest.Start(ctx, labNode, sshtest.Options{Client: signer.PublicKey(), ShellRoot: true})
	require.NoError(t, err)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(kh, []byte(m.KnownHostsLine()+"\n"), 0o600))
	inv, err := ssh.Open(ssh.Options{
		Hosts:      []ssh.Host{{Name: "metal-1", Addr: labNode.InterfaceAddr.String()}},
		Users:      []string{"root"},
		Signers:    []gossh.Signer{signer},
		KnownHosts: kh,
	})
	require.NoError(t, err)
	defer inv.Close()
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "metal-1", Name: "metal-1"})
	require.NoError(t, err)
	require.Equal(t, ssh.DriverName, n.Provider)

	pb := Playbook[greetIn, greetOut]{Dir: "testdata/greet"}
	rc := role.NewContext(role.ContextOptions{Role: pb.Meta().Name, Node: n, Logger: testLogger(t)})
	out, err := pb.Run(ctx, rc, greetInput())
	require.NoError(t, err)
	require.Equal(t, "http://"+labNode.InterfaceAddr.String()+":8080/", out.URL)
	require.Equal(t, 3, out.Changed)
	require.Contains(t, nodeFile(t, labNode, "/var/lib/greet/greeting.txt"), "hello from metal-1\n")
	again, err := pb.Run(ctx, rc, greetInput())
	require.NoError(t, err)
	require.Zero(t, again.Changed)
}
