package etcdstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/masonops/mason/store"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// Two deployments share one etcd cluster, each under its own prefix.
func ExampleOpen() {
	// A throwaway etcd process for the example; a real program passes its
	// cluster's endpoints (and Options.TLS).
	cluster, err := etcdtest.Launch(etcdtest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Stop()

	ctx := context.Background()
	prod, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: cluster.Endpoints(), Prefix: "mason/prod/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer prod.Close()
	lab, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: cluster.Endpoints(), Prefix: "mason/lab/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lab.Close()

	// Create-only writes: revision 0 means "the key must not exist yet".
	if _, err := prod.CompareAndSwap(ctx, "journal/web-1", 0, []byte("running")); err != nil {
		fmt.Println(err)
		return
	}
	_, err = prod.CompareAndSwap(ctx, "journal/web-1", 0, []byte("running"))
	fmt.Println("second create conflicts:", errors.Is(err, store.ErrConflict))

	if _, err := lab.Put(ctx, "journal/web-1", []byte("converged")); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range []*etcdstore.Store{prod, lab} {
		ents, _, err := s.List(ctx, "journal/")
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, e := range ents {
			fmt.Printf("%s%s = %s\n", s.Prefix(), e.Key, e.Value)
		}
	}
	// Output:
	// second create conflicts: true
	// mason/prod/journal/web-1 = running
	// mason/lab/journal/web-1 = converged
}
