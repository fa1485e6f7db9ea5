package graph_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/bolt"
)

// ManagerOut is a swarm manager's output: its join token is a secret.
type ManagerOut struct {
	Addr  string
	Token attr.Secret[string]
}

// WorkerIn takes the manager's output.
type WorkerIn struct{ Manager role.One[ManagerOut] }

// A deployment whose roles pass a secret: the journal seals it under the
// application's key-encryption key, and the worker still receives it. The
// state file holds no trace of the token; without the key the deployment
// is not planned at all.
func ExampleDeployment_UseKEK() {
	dir, _ := os.MkdirTemp("", "usekek")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// Made here for the example; an application loads its key with
	// seal.Load(env, file), the same key its pki.Manager uses.
	kek, err := seal.CreateFile(filepath.Join(dir, "kek"))
	if err != nil {
		fmt.Println(err)
		return
	}
	manager := role.Func(role.Meta{Name: "manager", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (ManagerOut, error) {
			return ManagerOut{Addr: "10.78.0.11:2377", Token: attr.Conceal("SWMTKN-1-example")}, nil
		})
	worker := role.Func(role.Meta{Name: "worker"},
		func(ctx context.Context, rc *role.Context, in WorkerIn) (struct{}, error) {
			fmt.Printf("%s joins %s with %s (%d bytes)\n", rc.Node().Name, in.Manager.Value.Addr, in.Manager.Value.Token, len(in.Manager.Value.Token.Reveal()))
			return struct{}{}, nil
		})
	deployment := func(k *seal.KEK) *graph.Deployment {
		d := graph.NewDeployment("swarm")
		d.Bind(d.Pool("managers", &provider.Node{Name: "m1", InterfaceAddr: netip.MustParseAddr("10.78.0.11")}), role.Of(manager))
		d.Bind(d.Pool("workers", &provider.Node{Name: "w1", InterfaceAddr: netip.MustParseAddr("10.78.0.12")}), role.Of(worker))
		d.UseKEK(k)
		return d
	}

	path := filepath.Join(dir, "state.db")
	st, err := bolt.Open(path, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := graph.NewPlan(ctx, deployment(kek), st)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := graph.Apply(ctx, plan, graph.Options{PerNode: 2}); err != nil {
		fmt.Println(err)
	}
	entries, _ := graph.ReadJournal(ctx, st, "swarm") // no key needed
	for _, e := range entries {
		fmt.Printf("%s: %s, output sealed: %v\n", e.ID, e.State, e.SealedOutput)
	}
	_, err = graph.NewPlan(ctx, deployment(nil), st)
	fmt.Println(strings.SplitN(err.Error(), ":", 3)[1])
	st.Close()

	raw, _ := os.ReadFile(path)
	fmt.Println("token in the state file:", strings.Contains(string(raw), "SWMTKN-1-example"))
	// Output:
	// w1 joins 10.78.0.11:2377 with [redacted] (16 bytes)
	// manager@m1: succeeded, output sealed: true
	// worker@w1: succeeded, output sealed: false
	//  deployment swarm has no key-encryption key, but its journal holds values sealed by an earlier run and would keep secrets (input Manager of role worker, output Token of role manager)
	// token in the state file: false
}
