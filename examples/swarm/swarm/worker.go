package swarm

import (
	"context"
	"time"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Worker makes a node a worker of the deployment's swarm. Workers join in
// parallel, bounded by the apply's parallelism; each join is given every
// manager's address and returns once the managers see the node ready. A
// node already in the swarm is not joined again, and a node in another
// swarm is an error.
type Worker struct{}

// WorkerIn is the swarm (its worker token), its managers, and the node's
// engine with the demo image loaded.
type WorkerIn struct {
	Init     role.One[InitOut]
	Managers role.All[MemberOut] `role:"swarm-manager"`
	Engine   role.Same[EngineOut]
	Image    role.Same[ImageOut]
	Issuer   role.Uses[pki.Issuer]
}

// Meta implements role.Role.
func (Worker) Meta() role.Meta {
	return role.Meta{Name: "swarm-worker", Version: "1", Doc: "joins the swarm as a worker",
		Retry: role.Retry{MaxAttempts: 3, Initial: time.Second}}
}

// Run implements role.Role.
func (Worker) Run(ctx context.Context, rc *role.Context, in WorkerIn) (MemberOut, error) {
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return MemberOut{}, err
	}
	var ips []string
	for _, m := range in.Managers {
		ips = append(ips, m.Value.EngineIP)
	}
	return join(ctx, rc, e, in.Engine.Value.IP, joinReq{init: in.Init.Value, role: dockerapi.RoleWorker,
		token: in.Init.Value.WorkerToken.Reveal(), managers: ips})
}

// Check reports drift when the node left the swarm.
func (Worker) Check(ctx context.Context, rc *role.Context, in WorkerIn, last MemberOut) (string, error) {
	return memberDrift(ctx, rc, in.Issuer.Value, last.EngineIP, last.NodeID, last.ClusterID, false), nil
}
