package swarm

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Init initialises the swarm on the first manager (a cluster-scope role:
// it runs on the first node of the managers pool), advertising the node's
// interface address for both the control and the data path — given
// explicitly, never guessed by dockerd.
//
// It is idempotent without trusting the journal: it asks the engine first.
// A node that already manages this deployment's swarm (its cluster carries
// the label mason.deployment=NAME) is not initialised again — a re-run,
// or a run after a crash that came right after the init, only reads the
// tokens; a node in any other swarm is an error that says so.
type Init struct{}

// InitIn is the first manager's engine, with the demo image loaded.
type InitIn struct {
	Engine role.Same[EngineOut]
	Image  role.Same[ImageOut]
	Issuer role.Uses[pki.Issuer]
}

// InitOut identifies the swarm. The join tokens are secrets: they never
// print, log or marshal to JSON.
type InitOut struct {
	ClusterID string
	// NodeID is the first manager's swarm node ID; Addr its swarm address
	// (IP:2377).
	NodeID string
	Addr   string
	// EngineIP is the first manager's engine address.
	EngineIP     string
	WorkerToken  attr.Secret[string]
	ManagerToken attr.Secret[string]
}

// DeploymentLabel is the swarm label that names the mason deployment that
// created the swarm.
const DeploymentLabel = "mason.deployment"

// Meta implements role.Role.
func (Init) Meta() role.Meta {
	return role.Meta{Name: "swarm-init", Version: "1", Scope: role.ScopeCluster,
		Doc: "initialises the swarm on the first manager (idempotent: inspects the engine first)"}
}

// Run implements role.Role.
func (Init) Run(ctx context.Context, rc *role.Context, in InitIn) (InitOut, error) {
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return InitOut{}, err
	}
	ip := in.Engine.Value.IP
	c := e.at(ip)
	defer c.Close()
	info, err := settled(ctx, c, rc.Node().Name)
	if err != nil {
		return InitOut{}, err
	}
	switch info.Swarm.LocalNodeState {
	case dockerapi.StateInactive:
		id, err := c.SwarmInit(ctx, dockerapi.InitRequest{
			ListenAddr:    hostPort(ip, SwarmPort),
			AdvertiseAddr: hostPort(ip, SwarmPort),
			DataPathAddr:  ip,
			Spec:          dockerapi.Spec{Labels: map[string]string{DeploymentLabel: rc.Deployment()}},
		})
		if err != nil {
			return InitOut{}, fmt.Errorf("swarm init on %s: %w", rc.Node().Name, err)
		}
		rc.Log().Info("initialised the swarm", "node_id", id, "advertise_addr", hostPort(ip, SwarmPort))
	case dockerapi.StateActive:
		if err := ours(info, rc.Deployment(), rc.Node().Name); err != nil {
			return InitOut{}, backoff.Permanent(err)
		}
	default:
		return InitOut{}, fmt.Errorf("the engine on %s is in swarm state %q (%s): repair it (docker swarm leave --force) and run again", rc.Node().Name, info.Swarm.LocalNodeState, info.Swarm.Error)
	}
	sw, err := c.Swarm(ctx)
	if err != nil {
		return InitOut{}, err
	}
	info, err = c.Info(ctx)
	if err != nil {
		return InitOut{}, err
	}
	return InitOut{
		ClusterID: sw.ID, NodeID: info.Swarm.NodeID, Addr: hostPort(ip, SwarmPort), EngineIP: ip,
		WorkerToken: attr.Conceal(sw.JoinTokens.Worker), ManagerToken: attr.Conceal(sw.JoinTokens.Manager),
	}, nil
}

// ours checks that an active engine manages the deployment's swarm.
func ours(info dockerapi.Info, deployment, node string) error {
	if !info.Swarm.ControlAvailable || info.Swarm.Cluster == nil {
		return fmt.Errorf("node %s is already a worker of another swarm (managers %v), not a manager of deployment %q's: make it leave that swarm (docker swarm leave) first", node, info.Swarm.RemoteManagers, deployment)
	}
	if got := info.Swarm.Cluster.Spec.Labels[DeploymentLabel]; got != deployment {
		return fmt.Errorf("node %s already manages swarm %s, which belongs to %s, not to deployment %q: it is not initialised again; make it leave that swarm (docker swarm leave --force) or use another node",
			node, info.Swarm.Cluster.ID, orUnlabelled(got), deployment)
	}
	return nil
}

func orUnlabelled(dep string) string {
	if dep == "" {
		return "no mason deployment"
	}
	return fmt.Sprintf("deployment %q", dep)
}

// settled returns the engine's info once it is not in the middle of
// joining a swarm (LocalNodeState pending), which it may be after a
// restart or after a join the controller did not see finish.
func settled(ctx context.Context, c *dockerapi.Client, node string) (dockerapi.Info, error) {
	var info dockerapi.Info
	err := poll(ctx, 60*time.Second, func() error {
		var err error
		if info, err = c.Info(ctx); err != nil {
			return err
		}
		if info.Swarm.LocalNodeState == dockerapi.StatePending {
			return fmt.Errorf("the engine on %s is still joining its swarm", node)
		}
		if info.Swarm.LocalNodeState == dockerapi.StateActive && !info.Swarm.ControlAvailable && isManager(info) {
			return fmt.Errorf("manager %s has not caught up with its swarm yet", node)
		}
		return nil
	})
	return info, err
}

// isManager reports whether the engine counts itself among its swarm's
// managers (it does before its control API is available again after a
// restart).
func isManager(info dockerapi.Info) bool {
	for _, p := range info.Swarm.RemoteManagers {
		if p.NodeID == info.Swarm.NodeID {
			return true
		}
	}
	return false
}

// Check reports drift when the first manager no longer manages the swarm.
func (Init) Check(ctx context.Context, rc *role.Context, in InitIn, last InitOut) (string, error) {
	return memberDrift(ctx, rc, in.Issuer.Value, last.EngineIP, last.NodeID, last.ClusterID, true), nil
}

// memberDrift describes how the engine at ip stopped being swarm node
// nodeID of the swarm clusterID, or returns "" (also when the engine does
// not answer: that is the engine role's drift).
func memberDrift(ctx context.Context, rc *role.Context, issuer pki.Issuer, ip, nodeID, clusterID string, manager bool) string {
	e, err := newEngines(ctx, issuer)
	if err != nil {
		return ""
	}
	c := e.at(ip)
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := c.Info(cctx)
	if err != nil {
		return ""
	}
	switch {
	case info.Swarm.LocalNodeState != dockerapi.StateActive:
		return fmt.Sprintf("%s is not in the swarm (state %q)", rc.Node().Name, info.Swarm.LocalNodeState)
	case info.Swarm.NodeID != nodeID:
		return fmt.Sprintf("%s is swarm node %s, not %s: it left the swarm and is in another one now", rc.Node().Name, info.Swarm.NodeID, nodeID)
	case manager && info.Swarm.Cluster != nil && info.Swarm.Cluster.ID != clusterID:
		return fmt.Sprintf("%s manages swarm %s, not %s", rc.Node().Name, info.Swarm.Cluster.ID, clusterID)
	case manager && !info.Swarm.ControlAvailable:
		return rc.Node().Name + " is no longer a manager"
	}
	return ""
}
