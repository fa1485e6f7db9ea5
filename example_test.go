package mason_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/masonops/mason"
	"github.com/masonops/mason/provider"
)

// A provisioner's main is one call: mason.Main(mason.App{Registry: reg}).
// Run is the same front end, for tests and embedding.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "mason-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	specPath := filepath.Join(dir, "etcd.hcl")
	if err := os.WriteFile(specPath, []byte(appSpec), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	app := mason.App{Name: "etcd-lab", Registry: registry(&memDriver{nodes: map[string]*provider.Node{}}), Stdout: os.Stdout, Stderr: os.Stdout}
	common := []string{"-spec", specPath, "-state", filepath.Join(dir, "state.db")}
	run := func(app mason.App, args ...string) {
		code := mason.Run(context.Background(), app, append(args, common...), nil)
		fmt.Println("exit", code)
	}
	quiet := app
	quiet.Stdout = io.Discard
	run(quiet, "apply")
	run(app, "plan")
	run(app, "plan", "-var", "token=t2")
	run(app, "why", "nobody@n1")
	// Output:
	// exit 0
	// no changes: front is converged (7 node-roles)
	// exit 0
	// plan for front: 3 to run, 1 to run if changed, 3 converged
	//   skip           peer-url@n1: converged
	//   skip           peer-url@n2: converged
	//   skip           peer-url@n3: converged
	//   run            member@n1: input Token changed
	//   run            member@n2: input Token changed
	//   run            member@n3: input Token changed
	//   run-if-changed verify: inputs known after run (waits for member@n1)
	// exit 0
	// etcd-lab why: front has no node-role "nobody@n1"; it has: peer-url@n1, peer-url@n2, peer-url@n3, member@n1, member@n2, member@n3, verify
	// exit 2
}
