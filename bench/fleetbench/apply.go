package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/ssh"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/bolt"
)

var (
	fleetVersion = attr.New[string]("fleet.version")
	fleetBlob    = attr.New[string]("fleet.blob")
)

// applyMason is one mason run, as a provisioner would do it from a cold
// process: claim every machine over SSH (connect, facts), plan against the
// journal (drift checks included), apply. again > 0 applies that many more
// times in the same process, over the connections already open (what a
// long-running controller does), each timed on its own line. With hold
// set, the connections are kept by a holder process in that directory
// (started by the first run, idle for holdIdle before it exits), so a
// later run — a new process — reuses them, as Ansible's ControlPersist
// masters are reused.
func applyMason(ctx context.Context, dir, version, state string, again int, hold string, holdIdle time.Duration) error {
	began := time.Now()
	f, err := loadFleet(dir)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(filepath.Join(dir, clientKey))
	if err != nil {
		return err
	}
	key, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	opts := ssh.Options{Signers: []gossh.Signer{key}, KnownHosts: filepath.Join(dir, knownHosts), Users: []string{"root"}}
	if hold != "" {
		opts.Persist = &ssh.Persist{Dir: hold, Idle: holdIdle, Start: true}
	}
	for _, n := range f.Nodes {
		opts.Hosts = append(opts.Hosts, ssh.Host{Name: n.Name, Addr: n.Addr.String()})
	}
	inv, err := ssh.Open(opts)
	if err != nil {
		return err
	}
	p := inv.Provider()
	defer p.Close()

	nodes := make([]*provider.Node, len(f.Nodes))
	var g errgroup.Group
	for i, fn := range f.Nodes {
		g.Go(func() error {
			n, err := p.Create(ctx, provider.NodeSpec{ID: fn.Name, Name: fn.Name})
			nodes[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	connected := time.Now()

	st, err := bolt.Open(state, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	for run := 0; run <= again; run++ {
		if run > 0 {
			began, connected = time.Now(), time.Now()
		}
		d := graph.NewDeployment("fleet")
		d.Bind(d.Pool("fleet", nodes...), role.Of(factsRole{}), role.Of(treeRole{}), role.Of(blobRole{}), role.Of(configRole{}))
		graph.Set(d, fleetVersion, version)
		graph.Set(d, fleetBlob, filepath.Join(dir, blobFile))
		par := 2 * len(nodes)
		// Every drift check at once: the transport batches a node's checks
		// into one remote command (provider.Command.Batch).
		plan, err := graph.NewPlan(ctx, d, st, graph.CheckParallelism(4*len(nodes)))
		if err != nil {
			return err
		}
		planned := time.Now()
		res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: par})
		if err != nil {
			return err
		}
		how := "connect"
		if run > 0 {
			how = "connections kept, connect"
		}
		fmt.Printf("mason: %d nodes: %d node-roles ran, %d converged; %s %s, plan %s, apply %s, total %s\n",
			len(nodes), res.Count(graph.StateSucceeded), res.Count(graph.StateSkipped), how,
			ms(connected.Sub(began)), ms(planned.Sub(connected)), ms(time.Since(planned)), ms(time.Since(began)))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000) }
