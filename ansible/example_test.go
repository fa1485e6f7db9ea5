package ansible_test

import (
	"context"
	"fmt"
	"log"

	"github.com/masonops/mason/ansible"
	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

// WebIn is the playbook's variables: port, backends and token (a
// secret, passed to Ansible without appearing anywhere else).
type WebIn struct {
	Port     int                 `attr:"web.port" default:"8080"`
	Backends []string            `attr:"web.backends"`
	Token    attr.Secret[string] `attr:"web.token"`
}

// WebOut is read back from what the playbook sets: `set_fact: url=...`.
// Its URL is published as the attribute web.url for later roles; the
// embedded Stats is the run's recap.
type WebOut struct {
	URL string `attr:"web.url"`
	ansible.Stats
}

// An existing playbook (playbooks/web/site.yml) in a deployment, between
// native roles: the backends come from the deployment, the playbook's URL
// goes to a native health check. (Needs ansible-playbook and reachable
// nodes; not run as a test here — the package tests run it on lab nodes.)
func ExamplePlaybook() {
	web := ansible.Playbook[WebIn, WebOut]{Dir: "playbooks/web", Doc: "nginx from the web team's playbook"}

	type CheckIn struct {
		URL string `attr:"web.url"`
	}
	health := role.Func(role.Meta{Name: "health"}, func(ctx context.Context, rc *role.Context, in CheckIn) (struct{}, error) {
		_, err := rc.Exec(ctx, "curl", "-fsS", in.URL)
		return struct{}{}, err
	})

	var nodes []*provider.Node // from a provider: lab, ssh or vsphere
	d := graph.NewDeployment("web")
	d.Bind(d.Pool("web", nodes...), role.Of(web), role.Of(health))
	graph.Set(d, attr.New[[]string]("web.backends"), []string{"10.0.0.21:9000", "10.0.0.22:9000"})
	graph.Set(d, attr.New[attr.Secret[string]]("web.token"), attr.Conceal("from your secret store"))
	kek, err := seal.Load("APP_KEK", "/var/lib/app/kek") // the journal keys the token's digest
	if err != nil {
		log.Fatal(err)
	}
	d.UseKEK(kek)

	ctx := context.Background()
	st := mem.New()
	defer st.Close()
	plan, err := graph.NewPlan(ctx, d, st) // editing playbooks/web re-runs it: "role version changed"
	if err != nil {
		log.Fatal(err)
	}
	res, err := graph.Apply(ctx, plan, graph.Options{})
	if err != nil {
		log.Fatal(err) // a failed task: *ansible.TaskError with the task's name
	}
	fmt.Println(res.Count(graph.StateSucceeded), "node-roles ran")
}
