package swarm

import (
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Nodes groups a deployment's nodes.
type Nodes struct {
	Managers []*provider.Node
	Workers  []*provider.Node
	// Services holds the node that runs the network services daemon.
	Services []*provider.Node
	// Leaving are nodes to take out of the swarm before they are deleted.
	Leaving []*provider.Node
}

// Rollout policies: workers' engines change two at a time and the first
// failure stops the rollout; managers' engines and manager joins go one at
// a time; nodes leave one at a time.
var (
	WorkerEngineRollout  = graph.Rollout{Batch: 2, MaxFailed: 1}
	ManagerEngineRollout = graph.Rollout{Batch: 1, MaxFailed: 1}
	ManagerJoinRollout   = graph.Rollout{Batch: 1}
	LeaveRollout         = graph.Rollout{Batch: 1}
)

// Deployment binds the Swarm roles to nodes: the authorities, the
// operator's certificate, the load balancer, DNS and the verification
// once for the deployment; certificates, engines, the image and the
// service endpoint on every swarm node; init, manager joins and the
// service on the managers; worker joins on the workers; the network
// services daemon on the service node; and Leave on leaving nodes.
func Deployment(name string, n Nodes) *graph.Deployment {
	d := graph.NewDeployment(name)
	if err := d.Attrs().Declare(Keys()...); err != nil {
		panic(err) // the keys are well-formed; this cannot fail
	}
	managers := d.Pool("managers", n.Managers...)
	workers := d.Pool("workers", n.Workers...)
	services := d.Pool("services", n.Services...)
	leaving := d.Pool("leaving", n.Leaving...)

	d.Bind(nil, role.Of(CA{}), role.Of(Operator{}), role.Of(LB{}), role.Of(DNS{}), role.Of(Verify{}))
	d.Bind(services, role.Of(NetsvcCert{}), role.Of(Netsvcd{}))
	for _, p := range []*graph.Pool{managers, workers} {
		d.Bind(p, role.Of(EngineCert{}), role.Of(Image{}), role.Of(Endpoint{}))
	}
	d.Bind(managers, role.Of(ManagerEngine{}), role.Of(Init{}), role.Of(Manager{}), role.Of(Service{}))
	d.Bind(workers, role.Of(Engine{}), role.Of(Worker{}))
	d.Bind(leaving, role.Of(Leave{}))

	d.SetRollout(Engine{}.Meta().Name, WorkerEngineRollout)
	d.SetRollout(ManagerEngine{}.Meta().Name, ManagerEngineRollout)
	d.SetRollout(Manager{}.Meta().Name, ManagerJoinRollout)
	d.SetRollout(Leave{}.Meta().Name, LeaveRollout)
	return d
}

// Roles lists every role of the package, for a spec registry.
func Roles() []*role.Def {
	return []*role.Def{role.Of(CA{}), role.Of(Operator{}), role.Of(LB{}), role.Of(DNS{}), role.Of(Verify{}),
		role.Of(NetsvcCert{}), role.Of(Netsvcd{}), role.Of(EngineCert{}), role.Of(Image{}), role.Of(Endpoint{}),
		role.Of(ManagerEngine{}), role.Of(Init{}), role.Of(Manager{}), role.Of(Service{}), role.Of(Engine{}),
		role.Of(Worker{}), role.Of(Leave{})}
}
