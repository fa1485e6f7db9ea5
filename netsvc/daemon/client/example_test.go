package client_test

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

// A controller reaches the daemon on a node through the netsvc contracts.
// Here the daemon runs in-process so the example is self-contained; the
// controller's side is the last few lines.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := mem.New()
	defer st.Close()
	kek, _ := seal.Generate()
	m, _ := pki.NewManager(st, pki.Options{Key: kek})
	ca, _ := m.Open(ctx, "netsvcd", pki.AuthorityConfig{})
	serverCert, _ := ca.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "netsvcd", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})
	reloader, _ := pki.NewReloader(serverCert)
	daemonState := mem.New()
	defer daemonState.Close()
	ready := make(chan daemon.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Serve(ctx, daemon.Config{Store: daemonState, API: "127.0.0.1:0", TLS: ca.ServerConfig(reloader), Ready: func(a daemon.Addrs) { ready <- a }})
	}()
	api := (<-ready).API

	// The controller: its own client certificate from the same service CA.
	me, _ := ca.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "controller"}})
	tlsCfg, _ := me.ClientTLS("127.0.0.1")
	c := client.New(api, tlsCfg)
	defer c.Close()

	var dns netsvc.DNS = c
	_ = c.AddZone(ctx, netsvc.Zone{Name: "lab.example."})
	err := dns.Upsert(ctx, "lab.example.", netsvc.RecordSet{Name: "etcd1", Type: netsvc.TypeA, Values: []string{"10.78.0.11"}})
	sets, _ := dns.Records(ctx, "lab.example.")
	fmt.Println(err, sets[0].Name, sets[0].Values)

	err = dns.Upsert(ctx, "other.example.", netsvc.RecordSet{Name: "x", Type: netsvc.TypeA, Values: []string{"10.0.0.1"}})
	fmt.Println(client.IsRemote(err))
	cancel()
	fmt.Println(<-done)
	// Output:
	// <nil> etcd1.lab.example. [10.78.0.11]
	// true
	// <nil>
}
