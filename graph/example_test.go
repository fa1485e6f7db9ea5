package graph_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/mem"
)

type PeerURL struct{ URL string }

type MemberIn struct {
	Peers role.All[PeerURL]
	Token string `attr:"etcd.cluster_token" default:"mason"`
}

type MemberOut struct{ InitialCluster string }

var ClusterToken = attr.New[string]("etcd.cluster_token")

func node(name string, ip byte) *provider.Node {
	return &provider.Node{Name: name, InterfaceAddr: netip.AddrFrom4([4]byte{10, 78, 0, ip})}
}

// An etcd-like cluster: every member needs every peer's URL. Adding a
// fourth node re-runs exactly the members whose peer list changed.
func Example() {
	peerURL := role.Func(role.Meta{Name: "peer-url"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURL, error) {
			return PeerURL{URL: "https://" + rc.Node().InterfaceAddr.String() + ":2380"}, nil
		})
	member := role.Func(role.Meta{Name: "etcd-member", Version: "3.5"},
		func(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
			var parts []string
			for _, p := range in.Peers {
				parts = append(parts, p.Node+"="+p.Value.URL)
			}
			return MemberOut{InitialCluster: strings.Join(parts, ",")}, nil
		})

	ctx := context.Background()
	st := mem.New()
	defer st.Close()

	d := graph.NewDeployment("etcd")
	members := d.Pool("members", node("n1", 11), node("n2", 12), node("n3", 13))
	d.Bind(members, role.Of(peerURL), role.Of(member))
	graph.Set(d, ClusterToken, "prod-7")

	plan, err := graph.NewPlan(ctx, d, st)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := graph.Apply(ctx, plan, graph.Options{Parallelism: 4})
	fmt.Println("first run:", res.Count(graph.StateSucceeded), "succeeded", err)

	members.Add(node("n4", 14))
	plan, _ = graph.NewPlan(ctx, d, st)
	for _, s := range plan.Steps {
		switch s.Why { // branch on the kind; print the words
		case graph.ReasonInputChanged:
			fmt.Println(s.Action, s.ID+":", s.Reason, s.Changed)
		case graph.ReasonNew:
			fmt.Println(s.Action, s.ID+":", s.Reason)
		}
	}
	res, _ = graph.Apply(ctx, plan, graph.Options{Parallelism: 4})
	fmt.Println("second run:", res.Count(graph.StateSucceeded), "succeeded,", res.Count(graph.StateSkipped), "skipped")
	// Output:
	// first run: 6 succeeded <nil>
	// run peer-url@n4: new
	// run etcd-member@n1: input Peers changed: +n4 [Peers]
	// run etcd-member@n2: input Peers changed: +n4 [Peers]
	// run etcd-member@n3: input Peers changed: +n4 [Peers]
	// run etcd-member@n4: new
	// second run: 5 succeeded, 3 skipped
}

// A manager's output field, untagged, is published as the attribute the
// workers take: each worker waits for the manager and receives its token.
func ExampleDeployment_PublishOutput() {
	type ManagerOut struct{ Token string }
	type WorkerIn struct {
		JoinToken string `attr:"swarm.join_token"`
	}
	manager := role.Func(role.Meta{Name: "swarm-manager", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (ManagerOut, error) {
			return ManagerOut{Token: "SWMTKN-1-" + rc.Node().Name}, nil
		})
	worker := role.Func(role.Meta{Name: "swarm-worker"},
		func(ctx context.Context, rc *role.Context, in WorkerIn) (struct{}, error) {
			fmt.Println(rc.Node().Name, "joins with", in.JoinToken)
			return struct{}{}, nil
		})

	ctx := context.Background()
	st := mem.New()
	defer st.Close()
	d := graph.NewDeployment("swarm")
	d.Bind(d.Pool("managers", node("m1", 11)), role.Of(manager))
	d.Bind(d.Pool("workers", node("w1", 21)), role.Of(worker))
	d.PublishOutput("swarm-manager", "Token", "swarm.join_token")

	plan, err := graph.NewPlan(ctx, d, st)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := plan.Step("swarm-worker@w1")
	fmt.Println("swarm-worker@w1 waits for", s.WaitsFor)
	if _, err := graph.Apply(ctx, plan, graph.Options{}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// swarm-worker@w1 waits for [swarm-manager@m1]
	// w1 joins with SWMTKN-1-m1
}
