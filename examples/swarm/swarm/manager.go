package swarm

import (
	"context"
	"time"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Manager makes a node a manager of the deployment's swarm. The first
// manager is one already ([Init] made the swarm there); the others join
// with the manager token, one at a time (the deployment rolls this role
// out in batches of one), and each run returns only once the new manager
// is reachable, so the next join never meets a raft group that is still
// adding the previous one. Every join is given every manager's address,
// the leader's first.
type Manager struct{}

// ManagerIn is the swarm, the node's engine with the image loaded, and
// where the managers' engines are.
type ManagerIn struct {
	Init    role.One[InitOut]
	Engine  role.Same[EngineOut]
	Image   role.Same[ImageOut]
	Engines role.All[EngineOut] `role:"docker-engine-manager"`
	Issuer  role.Uses[pki.Issuer]
}

// Meta implements role.Role.
func (Manager) Meta() role.Meta {
	return role.Meta{Name: "swarm-manager", Version: "1", Doc: "joins the swarm as a manager (one at a time, waits until reachable)",
		Retry: role.Retry{MaxAttempts: 3, Initial: time.Second}}
}

// Run implements role.Role.
func (Manager) Run(ctx context.Context, rc *role.Context, in ManagerIn) (MemberOut, error) {
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return MemberOut{}, err
	}
	var ips []string
	for _, p := range in.Engines {
		ips = append(ips, p.Value.IP)
	}
	return join(ctx, rc, e, in.Engine.Value.IP, joinReq{init: in.Init.Value, role: dockerapi.RoleManager,
		token: in.Init.Value.ManagerToken.Reveal(), managers: ips})
}

// Check reports drift when the node is no longer a manager of the swarm.
func (Manager) Check(ctx context.Context, rc *role.Context, in ManagerIn, last MemberOut) (string, error) {
	return memberDrift(ctx, rc, in.Issuer.Value, last.EngineIP, last.NodeID, last.ClusterID, true), nil
}
