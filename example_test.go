package mason_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/mem"
)

// PeerURL is what the peer-url role computes on every member.
type PeerURL struct{ URL string }

// MemberIn is the member role's dependency list: every member's PeerURL
// (cluster linking) and an attribute with a default.
type MemberIn struct {
	Peers role.All[PeerURL]
	Token string `attr:"etcd.cluster_token" default:"mason"`
}

// MemberOut is what a member reports.
type MemberOut struct{ InitialCluster string }

// The overview's example, runnable: two roles bound to a pool of three
// nodes, planned against a state store, applied, and planned again. The
// nodes here are plain values with addresses (the roles run no commands);
// a provider such as provider/lab gives real ones.
func Example() {
	ctx := context.Background()
	var nodes []*provider.Node
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		nodes = append(nodes, &provider.Node{ID: name, Name: name, InterfaceAddr: netip.AddrFrom4([4]byte{10, 78, 0, byte(10 + i)})})
	}

	peerURL := role.Func(role.Meta{Name: "peer-url", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURL, error) {
			return PeerURL{URL: "https://" + rc.Node().InterfaceAddr.String() + ":2380"}, nil
		})
	member := role.Func(role.Meta{Name: "etcd-member", Version: "3.4"},
		func(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
			var peers []string
			for _, p := range in.Peers {
				peers = append(peers, p.Node+"="+p.Value.URL)
			}
			return MemberOut{InitialCluster: strings.Join(peers, ",")}, nil
		})

	d := graph.NewDeployment("etcd")
	d.Bind(d.Pool("members", nodes...), role.Of(peerURL), role.Of(member))
	st := mem.New() // a bbolt file (store/bolt) keeps it across runs

	plan, err := graph.NewPlan(ctx, d, st)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("ran %d node-roles\n", res.Count(graph.StateSucceeded))

	again, err := graph.NewPlan(ctx, d, st)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("then %d to run, %d converged\n", again.Count(graph.ActionRun), again.Count(graph.ActionSkip))
	// Output:
	// ran 6 node-roles
	// then 0 to run, 6 converged
}
