package daemon_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/daemon"
	"github.com/masonops/mason/netsvc/daemon/client"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

// The daemon normally runs on a node of the deployment (Main, or
// cmd/mason-netsvcd); here it runs in-process so the example is
// self-contained. The controller holds a client certificate from the same
// pki service and uses the daemon through the netsvc contracts.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := mem.New()
	defer st.Close()

	kek, _ := seal.Generate() // a real controller loads it: seal.LoadFile
	m, _ := pki.NewManager(st, pki.Options{Key: kek, Prefix: "controller/pki/"})
	ca, _ := m.Open(ctx, "netsvcd", pki.AuthorityConfig{})
	serverCert, _ := ca.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{
		Name: "netsvcd", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	}})
	clientCert, _ := ca.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "controller"}})

	daemonState := mem.New() // on a node: Config.StatePath, a bbolt file
	defer daemonState.Close()
	serverReloader, _ := pki.NewReloader(serverCert)
	ready := make(chan daemon.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Serve(ctx, daemon.Config{
			Store: daemonState, API: "127.0.0.1:0",
			TLS:   ca.ServerConfig(serverReloader),
			Ready: func(a daemon.Addrs) { ready <- a },
		})
	}()
	addrs := <-ready

	clientTLS, _ := clientCert.ClientTLS("127.0.0.1")
	c := client.New(addrs.API, clientTLS)
	defer c.Close()
	var ipam netsvc.IPAM = c
	_ = ipam.AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/24")})
	a, err := ipam.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "node/n1"})
	fmt.Println(a.Addr, err)
	cancel()
	fmt.Println(<-done)
	// Output:
	// 10.78.0.1 <nil>
	// <nil>
}
