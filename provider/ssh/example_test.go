package ssh_test

import (
	"context"
	"fmt"
	"log"
	"os"

	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/ssh"
)

// Claim a machine from an inventory and run a command on it. Host keys
// must already be in known_hosts. (Needs a reachable machine; not run as a
// test here — the package tests run real sshd in lab nodes.)
func Example() {
	pem, err := os.ReadFile("/root/.ssh/id_ed25519")
	if err != nil {
		log.Fatal(err)
	}
	key, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		log.Fatal(err)
	}
	inv, err := ssh.Open(ssh.Options{
		Hosts:      []ssh.Host{{Name: "metal-1", Addr: "metal-1.example.com"}}, // probes ubuntu, ec2-user, root
		Signers:    []gossh.Signer{key},
		KnownHosts: "/root/.ssh/known_hosts",
	})
	if err != nil {
		log.Fatal(err)
	}
	p := inv.Provider()
	defer p.Close()

	ctx := context.Background()
	n, err := p.Create(ctx, provider.NodeSpec{ID: "m1", Name: "metal-1"})
	if err != nil {
		log.Fatal(err)
	}
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"uname", "-r"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s as %s: %s", n.Name, n.Login.User, res.Stdout)
}
