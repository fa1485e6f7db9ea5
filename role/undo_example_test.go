package role_test

import (
	"context"
	"fmt"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// EtcdMember is a role that can be undone: when its node leaves the
// deployment, the graph calls Undo with the output of its last run.
type EtcdMember struct{}

// EtcdMemberOut is what Run returns and Undo gets back.
type EtcdMemberOut struct{ PeerURL string }

func (EtcdMember) Meta() role.Meta { return role.Meta{Name: "etcd-member", Version: "3.4"} }

func (EtcdMember) Run(ctx context.Context, rc *role.Context, _ struct{}) (EtcdMemberOut, error) {
	return EtcdMemberOut{PeerURL: "https://" + rc.Node().Name + ":2380"}, nil
}

// Undo removes the member from the cluster, then stops it. It must be
// idempotent: a member already removed is success.
func (EtcdMember) Undo(ctx context.Context, rc *role.Context, last EtcdMemberOut) error {
	fmt.Printf("member-remove %s, then stop etcd on %s\n", last.PeerURL, rc.Node().Name)
	return nil
}

// A role implements role.Undoer to say how it is undone when its node
// leaves; role.Of finds it, as it finds a Checker. What the graph does
// when web-4 leaves is, for each of its node-roles in reverse dependency
// order:
func ExampleUndoer() {
	def := role.Of(EtcdMember{})
	fmt.Println("has undo:", def.HasUndo())

	ctx := context.Background()
	rc := role.NewContext(role.ContextOptions{Role: "etcd-member", Node: &provider.Node{Name: "web-4"}})
	last, _ := def.Run(ctx, rc, struct{}{}) // in the graph: the journaled output
	if err := def.Undo(ctx, rc, last); err != nil {
		fmt.Println(err)
	}
	// Output:
	// has undo: true
	// member-remove https://web-4:2380, then stop etcd on web-4
}

// A function role gets an Undo with WithUndo.
func ExampleFuncRole_WithUndo() {
	type Out struct{ Token string }
	join := role.Func(role.Meta{Name: "swarm-join"}, func(ctx context.Context, rc *role.Context, _ struct{}) (Out, error) {
		return Out{Token: "node-1"}, nil
	}).WithUndo(func(ctx context.Context, rc *role.Context, last Out) error {
		fmt.Println("docker swarm leave on", rc.Node().Name)
		return nil
	})
	def := role.Of(join)
	rc := role.NewContext(role.ContextOptions{Role: "swarm-join", Node: &provider.Node{Name: "w3"}})
	_ = def.Undo(context.Background(), rc, Out{Token: "node-1"})
	// Output: docker swarm leave on w3
}
