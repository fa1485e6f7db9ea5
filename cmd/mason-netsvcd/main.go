// Command mason-netsvcd runs mason's network services (authoritative DNS,
// IPAM, L4 load balancer) as a daemon that outlives the controller, managed
// over a mutual-TLS API. See package netsvc/daemon for the flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/masonops/mason/netsvc/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Main(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
