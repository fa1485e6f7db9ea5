// Command etcd deploys a 3-member etcd cluster with mutual TLS on lab nodes
// (Linux namespaces on this machine), verifies it with a write and a read
// through the cluster, and leaves it running.
//
//	go run ./examples/etcd                # deploy (or converge) 3 members
//	go run ./examples/etcd -members 5     # scale to 5: new members join with member-add
//	go run ./examples/etcd -members 3     # back to 3: two members leave with member-remove, their nodes are deleted
//	go run ./examples/etcd destroy        # remove the lab and the state
//	go run ./examples/etcd -force etcd-member@n2   # run a node-role again, or resume a held step as its message says
//
// The progress display redraws a status area in place on a terminal and
// writes lines otherwise; -progress live|lines chooses, -log FILE also
// writes the lines to a file.
//
// It needs root, iproute2, iptables, util-linux and Debian's etcd-server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/progress"
)

func main() {
	cfg := etcd.DefaultConfig()
	flag.IntVar(&cfg.Members, "members", cfg.Members, "number of etcd members")
	flag.StringVar(&cfg.Lab, "lab", cfg.Lab, "name of the lab the members run in")
	flag.StringVar(&cfg.StateDir, "state", cfg.StateDir, "directory for the state file, key-encryption key and operator certificate")
	flag.StringVar(&cfg.KeyFile, "key-file", "", "key-encryption key `file` (mode 0600; default STATE/kek, made for a new state only); "+etcd.KeyEnv+" wins when set")
	show := flag.String("progress", "auto", "progress display: auto (live on a terminal, lines otherwise), live or lines")
	logFile := flag.String("log", "", "also write the progress as log lines to `file`")
	flag.Func("force", "run this node-role (`ROLE@NODE`) or role even if converged or held (repeatable); a held step's message names it", func(s string) error {
		cfg.Force = append(cfg.Force, s)
		return nil
	})
	flag.Func("force-remove", "remove member `NODE`, which left (beyond -members), even if its member-remove fails; for a node already gone (repeatable)", func(s string) error {
		cfg.ForceRemove = append(cfg.ForceRemove, s)
		return nil
	})
	flag.Parse()
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer f.Close()
		cfg.Log = f
	}
	switch *show {
	case "auto":
	case "live":
		cfg.Progress = progress.Live
	case "lines":
		cfg.Progress = progress.Lines
	default:
		fmt.Fprintf(os.Stderr, "-progress %q: want auto, live or lines\n", *show)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch flag.Arg(0) {
	case "", "up":
		os.Exit(up(ctx, cfg))
	case "destroy":
		if err := etcd.Destroy(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "destroy:", err)
			os.Exit(1)
		}
		fmt.Printf("destroyed lab %s and %s\n", cfg.Lab, cfg.StateDir)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: use up (the default) or destroy\n", flag.Arg(0))
		os.Exit(2)
	}
}

func up(ctx context.Context, cfg etcd.Config) int {
	start := time.Now()
	s, err := etcd.Up(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd example failed:", err)
		return 1
	}
	fmt.Printf("\nran %d node-roles, skipped %d, in %v\n", s.Result.Count(graph.StateSucceeded), s.Result.Count(graph.StateSkipped), time.Since(start).Round(time.Millisecond))
	fmt.Println("timings:")
	for _, o := range s.Result.Outcomes {
		if o.State == graph.StateSucceeded {
			fmt.Printf("  %-28s %v\n", o.ID, o.Duration.Round(time.Millisecond))
		}
	}
	fmt.Println("members:")
	for _, n := range s.Nodes {
		fmt.Printf("  %-4s https://%s:2379\n", n.Name, n.InterfaceAddr)
	}
	fmt.Printf("verified write and read: %s\n", s.Wrote)
	fmt.Printf("reach it with:\n  etcdctl --endpoints=%s --cacert=%s --cert=%s --key=%s member list\n",
		strings.Join(s.Endpoints, ","), s.Operator.CAFile, s.Operator.CertFile, s.Operator.KeyFile)
	fmt.Printf("etcd ready: %d members, endpoints %s\n", len(s.Nodes), strings.Join(s.Endpoints, ","))
	return 0
}
