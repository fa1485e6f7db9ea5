package graph_test

import (
	"context"
	"os"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/mem"
)

// WriteDOT draws a plan; `dot -Tsvg` renders it.
func ExampleWriteDOT() {
	type AOut struct{ V string }
	type BIn struct{ A role.Same[AOut] }
	a := role.Func(role.Meta{Name: "a"}, func(ctx context.Context, rc *role.Context, _ struct{}) (AOut, error) {
		return AOut{V: "a"}, nil
	})
	b := role.Func(role.Meta{Name: "b"}, func(ctx context.Context, rc *role.Context, in BIn) (struct{}, error) {
		return struct{}{}, nil
	})
	d := graph.NewDeployment("demo")
	d.Bind(d.Pool("p", &provider.Node{Name: "n1"}), role.Of(a), role.Of(b))
	st := mem.New()
	defer st.Close()
	p, _ := graph.NewPlan(context.Background(), d, st)
	_ = graph.WriteDOT(os.Stdout, p, nil)
	// Output:
	// digraph "demo" {
	//   label="deployment demo";
	//   rankdir=LR;
	//   node [shape=box, style="rounded,filled", fontname="Helvetica"];
	//   subgraph cluster_0 {
	//     label="n1";
	//     style=dashed;
	//     "a@n1" [label="a\nrun", fillcolor="#ffd27f", tooltip="run: new"];
	//     "b@n1" [label="b\nrun", fillcolor="#ffd27f", tooltip="run: new"];
	//   }
	//   "a@n1" -> "b@n1";
	// }
}
