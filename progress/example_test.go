package progress_test

import (
	"context"
	"fmt"
	"os"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/progress"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/mem"
)

// A Display is the Events subscriber of Apply. On a terminal it redraws
// one status area in place; here, writing to a pipe or a file, it writes a
// line per start and finish and a last summary:
//
//	[   0.0s] start   hello@n1: new
//	[   0.0s] start   hello@n2: new
//	[   0.0s] done    hello@n1 in 0.0s
//	[   0.0s] done    hello@n2 in 0.0s
//	[   0.0s] 2 of 2 done (2 succeeded); slowest hello@n2 0.0s
func Example() {
	ctx := context.Background()
	d := graph.NewDeployment("hello")
	d.Bind(d.Pool("web", &provider.Node{ID: "n1", Name: "n1"}, &provider.Node{ID: "n2", Name: "n2"}),
		role.Of(role.Func(role.Meta{Name: "hello", Version: "1"}, func(ctx context.Context, rc *role.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, nil
		})))
	plan, err := graph.NewPlan(ctx, d, mem.New())
	if err != nil {
		fmt.Println(err)
		return
	}
	show := progress.New(os.Stderr, progress.Options{})
	_, err = graph.Apply(ctx, plan, graph.Options{Events: show})
	show.Close() // the last frame, or the last summary line
	if err != nil {
		fmt.Println(err)
	}
}
