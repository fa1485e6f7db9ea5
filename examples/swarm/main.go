// Command swarm deploys a real Docker Swarm on lab nodes (Linux namespaces
// on this machine): Debian's dockerd on every node with mutual TLS, a demo
// service on every node, and mason's DNS and load balancer in front of it,
// running as a daemon on a service node so they outlive this program. It
// ends with the line "swarm ready: N nodes, service at URL", printed only
// after a request through the load balancer reached the service.
//
//	go run ./examples/swarm                    # deploy (or converge) 1 manager + 2 workers
//	go run ./examples/swarm -workers 3         # scale out: only the new node's roles, the LB and DNS run
//	go run ./examples/swarm -workers 2         # scale in: w3 drained, left, removed, deleted
//	go run ./examples/swarm -label tier=web    # roll an engine change over the workers in batches
//	go run ./examples/swarm destroy            # remove the lab and the state
//
// The same deployment as an HCL spec, run by mason's front end (plan,
// apply, status, why, graph, destroy):
//
//	go run ./examples/swarm spec plan -spec examples/swarm/swarm.hcl -state /var/lib/mason/swarm-example/state.db
//
// It needs root, iproute2, iptables, util-linux, Debian's docker.io and
// busybox-static.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/progress"
)

type labels []string

func (l *labels) String() string     { return strings.Join(*l, ",") }
func (l *labels) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "netsvcd" {
		// The network services daemon, as the service node runs it.
		if err := swarm.ServeNetsvcd(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "spec" {
		// mason's front end over the spec: the same roles, the same state.
		os.Exit(cli.Run(ctx, swarm.FrontEnd(), os.Args[2:], os.Environ()))
	}
	cfg := swarm.DefaultConfig()
	var ls labels
	flag.IntVar(&cfg.Managers, "managers", cfg.Managers, "number of managers (1, 3 or 5)")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "number of workers")
	flag.StringVar(&cfg.Lab, "lab", cfg.Lab, "name of the lab the nodes run in")
	flag.StringVar(&cfg.StateDir, "state", cfg.StateDir, "directory for the state, the pki store, the key-encryption key, the log and the operator's certificate")
	flag.Var(&ls, "label", "engine label `key=value` of the workers (repeatable); a change rolls over the workers")
	flag.StringVar(&cfg.Engine.LogMaxSize, "log-max-size", "", "json-file max-size of the workers' engines (default 10m); a change rolls over the workers")
	mode := flag.String("progress", "auto", "how progress is shown: auto (live on a terminal, lines otherwise), live or lines")
	logFile := flag.String("log", "", "append the roles' log lines to this `file` (default: swarm.log in the state directory)")
	flag.Parse()
	switch *mode {
	case "auto":
		cfg.Progress = progress.Auto
	case "live":
		cfg.Progress = progress.Live
	case "lines":
		cfg.Progress = progress.Lines
	default:
		fmt.Fprintf(os.Stderr, "-progress %q: use auto, live or lines\n", *mode)
		os.Exit(2)
	}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer f.Close()
		cfg.Log = f
	}
	cfg.Engine.Labels = ls
	if len(ls) == 0 {
		cfg.Engine.Labels = nil
	}

	switch flag.Arg(0) {
	case "", "up":
		os.Exit(up(ctx, cfg))
	case "destroy":
		if err := swarm.Destroy(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "destroy:", err)
			os.Exit(1)
		}
		fmt.Printf("destroyed lab %s and %s\n", cfg.Lab, cfg.StateDir)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: use up (the default), destroy, or spec COMMAND (mason's front end)\n", flag.Arg(0))
		os.Exit(2)
	}
}

func up(ctx context.Context, cfg swarm.Config) int {
	s, err := swarm.Up(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "swarm example failed:", err)
		return 1
	}
	fmt.Printf("\nran %d node-roles, skipped %d, in %v\n", s.Result.Count(graph.StateSucceeded), s.Result.Count(graph.StateSkipped), s.Elapsed.Round(time.Millisecond))
	byRole := map[string][]string{}
	for _, o := range s.Result.Outcomes {
		if o.State == graph.StateSucceeded {
			byRole[o.Role] = append(byRole[o.Role], fmt.Sprintf("%s %v", nodeOr(o.Node), o.Duration.Round(time.Millisecond)))
		}
	}
	if len(byRole) > 0 {
		fmt.Println("timings per role:")
		var roles []string
		for r := range byRole {
			roles = append(roles, r)
		}
		sort.Strings(roles)
		for _, r := range roles {
			fmt.Printf("  %-22s %s\n", r, strings.Join(byRole[r], ", "))
		}
	}
	fmt.Println("nodes:")
	for _, n := range s.Managers {
		fmt.Printf("  %-4s manager  %s  docker engine https://%s:2376\n", n.Name, n.InterfaceAddr, n.InterfaceAddr)
	}
	for _, n := range s.Workers {
		fmt.Printf("  %-4s worker   %s  docker engine https://%s:2376\n", n.Name, n.InterfaceAddr, n.InterfaceAddr)
	}
	fmt.Printf("  %-4s services %s  DNS %s, load balancer %s\n", s.Service.Name, s.Service.InterfaceAddr, s.DNS, s.URL)
	for _, r := range s.Removed {
		fmt.Printf("  %-4s removed\n", r)
	}
	fmt.Printf("answered through the load balancer: %s\n", strings.Join(s.Answered, ", "))
	fmt.Printf("ask the DNS daemon:\n  dig @%s +short %s.%s\n", s.Service.InterfaceAddr, s.Managers[0].Name, s.Zone)
	fmt.Printf("use the swarm:\n  DOCKER_HOST=tcp://%s:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=%s docker node ls\n", s.Managers[0].InterfaceAddr, s.OperatorDir)
	fmt.Printf("swarm ready: %d nodes, service at %s\n", len(s.Managers)+len(s.Workers), s.URL)
	return 0
}

func nodeOr(n string) string {
	if n == "" {
		return "-"
	}
	return n
}
