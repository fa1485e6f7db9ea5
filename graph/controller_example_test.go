package graph_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/mem"
)

type Installed struct{ Node string }

// Two controllers apply one deployment through one store at once. In
// production each is its own process (on its own machine) and the store
// is store/etcd; here both are goroutines on an in-memory store. Every
// node-role runs once, in whichever controller claims it first; the other
// controller adopts its output.
func ExampleController() {
	st := mem.New()
	defer st.Close()
	var runs atomic.Int32
	install := role.Func(role.Meta{Name: "install"}, func(ctx context.Context, rc *role.Context, _ struct{}) (Installed, error) {
		runs.Add(1)
		return Installed{Node: rc.Node().Name}, nil
	})
	deployment := func() *graph.Deployment {
		d := graph.NewDeployment("web")
		d.Bind(d.Pool("web", &provider.Node{Name: "web-1"}, &provider.Node{Name: "web-2"}, &provider.Node{Name: "web-3"}), role.Of(install))
		return d
	}

	var wg sync.WaitGroup
	for _, name := range []string{"ctl-a", "ctl-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			p, err := graph.NewPlan(ctx, deployment(), st)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			host, _ := os.Hostname()
			res, err := graph.Apply(ctx, p, graph.Options{
				Controller: &graph.Controller{Name: fmt.Sprintf("%s on %s pid %d", name, host, os.Getpid())},
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			if res.Count(graph.StateSucceeded)+res.Count(graph.StateSkipped) != 3 {
				fmt.Fprintln(os.Stderr, name, "did not converge")
			}
		}()
	}
	wg.Wait()

	entries, _ := graph.ReadJournal(context.Background(), st, "web")
	for _, e := range entries {
		fmt.Println(e.ID, e.State)
	}
	fmt.Println("runs:", runs.Load())
	// Output:
	// install@web-1 succeeded
	// install@web-2 succeeded
	// install@web-3 succeeded
	// runs: 3
}
