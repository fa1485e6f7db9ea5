package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/provider/ssh/sshtest"
)

// fleet is what "up" leaves in the work directory for the other commands
// and for Ansible: the lab, its nodes and the client's credentials.
type fleet struct {
	Lab    string      `json:"lab"`
	LabDir string      `json:"lab_dir"`
	Nodes  []fleetNode `json:"nodes"`
}

type fleetNode struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"addr"`
}

const (
	fleetFile  = "fleet.json"
	clientKey  = "id_ed25519"
	knownHosts = "known_hosts"
	blobFile   = "blob.bin"
	holderDir  = "mason-holder" // the ssh connection holder's directory
)

// up creates the lab: n nodes, each running its own sshd that accepts
// one client key (written to dir for Ansible) for root, a known_hosts file
// with every node's host key, and the 1 MiB payload both tools copy.
func up(ctx context.Context, dir, name string, n int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	l, err := lab.Open(ctx, lab.Options{Name: name, Dir: filepath.Join(dir, "lab")})
	if err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, clientKey), pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	clientPub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		return err
	}
	blob := make([]byte, 1<<20)
	if _, err := rand.Read(blob); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, blobFile), blob, 0o644); err != nil {
		return err
	}

	f := fleet{Lab: name, LabDir: l.Dir(), Nodes: make([]fleetNode, n)}
	hostLines := make([]string, n)
	p := l.Provider()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			id := fmt.Sprintf("n%02d", i+1)
			node, err := p.Create(ctx, provider.NodeSpec{ID: id})
			if err != nil {
				return err
			}
			// root's login shell becomes /bin/sh in the node: this host's
			// /root/.bashrc runs "pyenv init", about 0.9 s, and Debian's
			// bash reads it for every command sshd starts — a cost of this
			// machine, not of either tool, that would drown both.
			m, err := sshtest.Start(ctx, node, sshtest.Options{Client: clientPub, ShellRoot: true})
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			f.Nodes[i] = fleetNode{Name: id, Addr: node.InterfaceAddr}
			hostLines[i] = m.KnownHostsLine()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, knownHosts), []byte(strings.Join(hostLines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return os.WriteFile(filepath.Join(dir, fleetFile), b, 0o600)
}

// down removes the lab and everything in it (sshd included: it runs in
// the nodes' PID namespaces).
func down(ctx context.Context, dir string) error {
	f, err := loadFleet(dir)
	if err != nil {
		return err
	}
	l, err := lab.Open(ctx, lab.Options{Name: f.Lab, Dir: f.LabDir})
	if err != nil {
		return err
	}
	return l.Teardown(ctx)
}

func loadFleet(dir string) (*fleet, error) {
	b, err := os.ReadFile(filepath.Join(dir, fleetFile))
	if err != nil {
		return nil, err
	}
	var f fleet
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", fleetFile, err)
	}
	return &f, nil
}

// openFleet loads the fleet made by up and its nodes by name, reached
// through the lab's own transport (not SSH): how verify, reset and tamper
// see the nodes without going through either tool under test.
func openFleet(ctx context.Context, dir string) (*fleet, map[string]*provider.Node, error) {
	f, err := loadFleet(dir)
	if err != nil {
		return nil, nil, err
	}
	l, err := lab.Open(ctx, lab.Options{Name: f.Lab, Dir: f.LabDir})
	if err != nil {
		return nil, nil, err
	}
	out := map[string]*provider.Node{}
	for _, fn := range f.Nodes {
		n, err := l.Provider().Get(ctx, fn.Name)
		if err != nil {
			return nil, nil, err
		}
		out[fn.Name] = n
	}
	return f, out, nil
}

func shell(ctx context.Context, n *provider.Node, script string) error {
	_, err := shellOut(ctx, n, script)
	return err
}

func shellOut(ctx context.Context, n *provider.Node, script string) ([]byte, error) {
	cmd := provider.Command{Args: []string{"sh", "-c", script}, Timeout: time.Minute}
	res, err := n.Transport.Run(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := res.Err(cmd); err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return res.Stdout, nil
}

// printHosts prints one Ansible inventory line per node, in name order
// (the order of groups['fleet'], which the config's peer list follows).
func printHosts(dir string) error {
	f, err := loadFleet(dir)
	if err != nil {
		return err
	}
	for _, n := range f.Nodes {
		fmt.Printf("%s ansible_host=%s\n", n.Name, n.Addr)
	}
	return nil
}
