package cli_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

// GreetIn is the input of the example's one role: an attribute with a
// default that the spec overrides.
type GreetIn struct {
	Greeting string `attr:"app.greeting" default:"hello"`
}

// GreetOut is its output.
type GreetOut struct{ Said string }

// A provisioner's main is one call, cli.Main(cli.App{Registry: reg}); Run
// is the same front end without the exit. This one knows one service role
// (it runs once for the deployment, on no node, so the spec needs no
// provider) and runs apply, plan, a plan with a changed variable and a why
// for a node-role the deployment does not have.
func ExampleRun() {
	reg := spec.NewRegistry()
	err := reg.Roles(role.Of(role.Func(role.Meta{Name: "greet", Version: "1", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, in GreetIn) (GreetOut, error) {
			return GreetOut{Said: in.Greeting + ", world"}, nil
		})))
	if err != nil {
		fmt.Println(err)
		return
	}

	dir, err := os.MkdirTemp("", "mason-cli-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	specFile := filepath.Join(dir, "hello.hcl")
	src := `deployment = "hello"

variable "greeting" {
  type    = string
  default = "hi"
}

role "greet" {
  attrs = { "app.greeting" = var.greeting }
}
`
	if err := os.WriteFile(specFile, []byte(src), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	app := cli.App{Name: "hello", Registry: reg, Stdout: os.Stdout, Stderr: os.Stdout}
	run := func(app cli.App, args ...string) {
		args = append(args, "-spec", specFile, "-state", filepath.Join(dir, "hello.state"))
		fmt.Println("exit", cli.Run(context.Background(), app, args, nil))
	}
	quiet := app
	quiet.Stdout = io.Discard // apply's progress display
	run(quiet, "apply")
	run(app, "plan")
	run(app, "plan", "-var", "greeting=hello")
	run(app, "why", "greet@n1")
	// Output:
	// exit 0
	// no changes: hello is converged (1 node-role)
	// exit 0
	// plan for hello: 1 to run, 0 to run if changed, 0 converged
	//   run            greet: input Greeting changed
	// exit 0
	// hello why: hello has no node-role "greet@n1"; it has: greet
	// exit 2
}
