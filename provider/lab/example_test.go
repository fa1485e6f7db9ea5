package lab_test

import (
	"context"
	"fmt"
	"log"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
)

// Open a lab, make a node ready, run a command in it, and tear it all
// down. (Needs root; not run as a test here — the package tests do the
// same in CI.)
func Example() {
	ctx := context.Background()
	l, err := lab.Open(ctx, lab.Options{Name: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Teardown(ctx)

	p := l.Provider()
	n, err := p.Create(ctx, provider.NodeSpec{ID: provider.StableID("demo", "web-0"), Name: "web-0"})
	if err != nil {
		log.Fatal(err)
	}
	if n, err = p.WaitReady(ctx, n.ID); err != nil {
		log.Fatal(err)
	}
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"hostname"}})
	if err != nil {
		log.Fatal(err)
	}
	var info *lab.NodeInfo
	n.As(&info)
	fmt.Printf("%s at %s (init pid %d): %s", n.Name, n.InterfaceAddr, info.PID, res.Stdout)
}

// A destroy command removes a lab by name, whatever is left of it, without
// creating anything first. (Needs root; not run as a test here.)
func ExampleRemove() {
	if err := lab.Remove(context.Background(), lab.Options{Name: "demo"}); err != nil {
		log.Fatal(err)
	}
}
