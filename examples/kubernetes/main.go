// Command kubernetes deploys Kubernetes the hard way, automated, on lab
// nodes (Linux namespaces on this machine): 3 control-plane nodes (etcd
// members and API servers behind mason's load balancer) and 2 workers by
// default, 1 + 2 on small machines. It ends with the hard way's smoke test,
// prints the admin kubeconfig and a kubectl command that works, and leaves
// the cluster running.
//
//	go run ./examples/kubernetes                        # deploy (or converge) 3 + 2
//	go run ./examples/kubernetes -control-planes 1      # 1 + 2 for small machines
//	go run ./examples/kubernetes -workers 3             # scale out: only the new worker's roles, the routes and the smoke test run
//	go run ./examples/kubernetes -workers 3 scale-in    # drain, delete and remove the last worker (leaving 2)
//	go run ./examples/kubernetes rotate                 # renew the API servers' serving certificates, no restart
//	go run ./examples/kubernetes destroy                # remove the lab, the daemon and the state
//
// It needs root, iproute2, iptables, util-linux, and Debian's etcd-server,
// containerd, runc, containernetworking-plugins and busybox-static. The
// Kubernetes binaries are built from the Go module proxy on first use
// (minutes; cached in /var/cache/mason/kubernetes).
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

	"github.com/masonops/mason/examples/kubernetes/kube"
	"github.com/masonops/mason/graph"
)

func main() {
	kube.ServeNetsvcIfChild()
	cfg := kube.DefaultConfig()
	flag.IntVar(&cfg.ControlPlanes, "control-planes", cfg.ControlPlanes, "control-plane nodes: 1 or 3")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "worker nodes")
	flag.StringVar(&cfg.Lab, "lab", cfg.Lab, "name of the lab the nodes run in")
	flag.StringVar(&cfg.StateDir, "state", cfg.StateDir, "directory for the state, the key-encryption key and the admin kubeconfig")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	switch flag.Arg(0) {
	case "", "up":
		s, err := kube.Up(ctx, cfg)
		os.Exit(report(s, err, start))
	case "scale-in":
		s, gone, err := kube.RemoveWorker(ctx, cfg)
		if err == nil {
			fmt.Printf("removed worker %s\n", gone)
		}
		os.Exit(report(s, err, start))
	case "rotate":
		r, err := kube.RotateServing(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rotate:", err)
			os.Exit(1)
		}
		for n, serial := range r.New {
			fmt.Printf("  %s: serving certificate %s -> %s\n", n, r.Old[n], serial)
		}
		os.Exit(report(r.Summary, nil, start))
	case "destroy":
		if err := kube.Destroy(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "destroy:", err)
			os.Exit(1)
		}
		fmt.Printf("destroyed lab %s and %s\n", cfg.Lab, cfg.StateDir)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: use up (the default), scale-in, rotate or destroy\n", flag.Arg(0))
		os.Exit(2)
	}
}

func report(s *kube.Summary, err error, start time.Time) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes example failed:", err)
		return 1
	}
	fmt.Printf("\nran %d node-roles, skipped %d, in %v\n", s.Result.Count(graph.StateSucceeded), s.Result.Count(graph.StateSkipped), time.Since(start).Round(time.Millisecond))
	fmt.Println("timings:")
	for _, o := range s.Result.Outcomes {
		if o.State == graph.StateSucceeded {
			fmt.Printf("  %-40s %v\n", o.ID, o.Duration.Round(time.Millisecond))
		}
	}
	fmt.Printf("API: %s (load balancer %s)\n", s.APIURL, s.LB)
	fmt.Printf("admin kubeconfig: %s\n", s.Kubeconfig)
	fmt.Printf("try:\n  %s\n", strings.Join(s.KubectlCommand("get", "nodes", "-o", "wide"), " "))
	return 0
}
