package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

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

// A provisioner whose runs are separate processes keeps its connections
// between them: the first run starts a holder (this same program, run
// again by the inventory, serving from HolderMain), the next runs reuse
// its connections and the facts read on them, and the holder exits after
// two idle minutes. (Needs a reachable machine; not run as a test.)
func ExamplePersist() {
	ssh.HolderMain() // first thing in main: serves here when started as the holder

	pem, err := os.ReadFile("/root/.ssh/id_ed25519")
	if err != nil {
		log.Fatal(err)
	}
	key, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		log.Fatal(err)
	}
	inv, err := ssh.Open(ssh.Options{
		Hosts:      []ssh.Host{{Name: "metal-1", Addr: "metal-1.example.com"}},
		Signers:    []gossh.Signer{key},
		KnownHosts: "/root/.ssh/known_hosts",
		Persist:    &ssh.Persist{Dir: "/run/user/0/myprovisioner-ssh", Idle: 2 * time.Minute, Start: true},
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
	// A drift check: read-only, so it may share one remote shell with the
	// node's other checks.
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sha256sum", "/etc/myapp.conf"}, Batch: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", res.Stdout)
}

// A holder run on its own, for example as a systemd user service, rather
// than started by the inventory (Persist.Start false).
func ExampleServeHolder() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := ssh.ServeHolder(ctx, ssh.Persist{Dir: "/run/user/0/myprovisioner-ssh", Idle: time.Hour})
	if err != nil && !errors.Is(err, ssh.ErrHolderRunning) {
		log.Fatal(err)
	}
}
