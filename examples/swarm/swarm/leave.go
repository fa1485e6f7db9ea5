package swarm

import (
	"context"
	"fmt"
	"time"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Leave takes a node out of the swarm gracefully, before the provider
// deletes it. [Deployment] binds it to the nodes that leave, instead of
// their other roles; it waits for the load balancer and DNS to have
// dropped the node (their aggregate inputs lost it), then:
//
//  1. waits until no connection through the load balancer is left on the
//     node's backend (it drains: no request fails);
//  2. a manager is demoted first — refused, naming the numbers, when the
//     remaining managers would not keep the raft quorum;
//  3. drains the node and waits until none of its tasks runs;
//  4. leaves the swarm on the node, waits until the managers see it down,
//     and removes it from the node list (docker node rm).
//
// Every step asks the swarm first, so a re-run after a crash goes on where
// the last one stopped, and a node whose engine is already gone is only
// removed from the node list.
//
// When mason's graph can undo roles of a node that leaves the deployment,
// this is the swarm roles' undo: [LeaveSwarm] is the function to call.
type Leave struct{}

// LeaveIn is the swarm, its remaining managers, and the services that
// must have forgotten the node first.
type LeaveIn struct {
	Init     role.One[InitOut]
	Managers role.All[MemberOut] `role:"swarm-manager"`
	Daemon   role.One[NetsvcdOut]
	LB       role.One[LBOut]
	DNS      role.One[DNSOut]
	Issuer   role.Uses[pki.Issuer]
}

// LeaveOut is the node that left.
type LeaveOut struct {
	Node   string
	NodeID string
	// Was is the role it had ("" when the swarm no longer knew it).
	Was string
}

// Meta implements role.Role.
func (Leave) Meta() role.Meta {
	return role.Meta{Name: "swarm-leave", Version: "1",
		Doc: "takes a leaving node out: LB backend drained, demoted (managers), drained, left, removed from the node list"}
}

// Run implements role.Role.
func (Leave) Run(ctx context.Context, rc *role.Context, in LeaveIn) (LeaveOut, error) {
	var ips []string
	for _, m := range in.Managers {
		if m.Node != rc.Node().Name {
			ips = append(ips, m.Value.EngineIP)
		}
	}
	return LeaveSwarm(ctx, rc, in.Issuer.Value, in.Init.Value, ips, &in.Daemon.Value, in.LB.Value.Frontend)
}

// LeaveSwarm takes rc's node out of the swarm init, through one of the
// managers at managerIPs (engine addresses), with the controller's
// certificates from issuer. When daemon is not nil, it
// first waits until the frontend's backend for the node has no connection
// left.
func LeaveSwarm(ctx context.Context, rc *role.Context, issuer pki.Issuer, init InitOut, managerIPs []string, daemon *NetsvcdOut, frontend string) (LeaveOut, error) {
	name := rc.Node().Name
	e, err := newEngines(ctx, issuer)
	if err != nil {
		return LeaveOut{}, err
	}
	if daemon != nil {
		if err := waitBackendIdle(ctx, issuer, *daemon, frontend, name); err != nil {
			return LeaveOut{}, err
		}
	}
	mgr, err := ourManager(ctx, e, joinReq{init: init, managers: managerIPs})
	if err != nil {
		return LeaveOut{}, err
	}
	defer mgr.Close()

	out := LeaveOut{Node: name}
	c := e.at(rc.Node().InterfaceAddr.String())
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, infoErr := c.Info(cctx)
	cancel()
	id := info.Swarm.NodeID
	if infoErr != nil || info.Swarm.LocalNodeState != dockerapi.StateActive {
		// The engine is gone, or it left already: the node list may still
		// name it.
		if id, err = nodeByHostname(ctx, mgr, name); err != nil || id == "" {
			return out, err
		}
	}
	node, err := mgr.Node(ctx, id)
	if dockerapi.IsNotFound(err) {
		if infoErr == nil && info.Swarm.LocalNodeState == dockerapi.StateActive {
			return out, fmt.Errorf("node %s is in another swarm than deployment %q's (%s): not touched", name, rc.Deployment(), init.ClusterID)
		}
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.NodeID, out.Was = id, node.Spec.Role

	if node.Spec.Role == dockerapi.RoleManager {
		if err := ensureRole(ctx, rc, mgr, id, dockerapi.RoleWorker); err != nil {
			return out, err
		}
		if err := poll(ctx, 60*time.Second, func() error {
			n, err := mgr.Node(ctx, id)
			if err == nil && n.ManagerStatus != nil {
				err = fmt.Errorf("%s is still a raft member", name)
			}
			return err
		}); err != nil {
			return out, err
		}
		rc.Log().Info("demoted", "node_id", id)
	}
	changed, err := updateNode(ctx, mgr, id, func(s *dockerapi.NodeSpec) bool {
		if s.Availability == dockerapi.AvailabilityDrain {
			return false
		}
		s.Availability = dockerapi.AvailabilityDrain
		return true
	})
	if err != nil {
		return out, fmt.Errorf("draining %s: %w", name, err)
	}
	if changed {
		rc.Log().Info("draining", "node_id", id)
	}
	if err := waitNoTasks(ctx, mgr, id, name); err != nil {
		return out, err
	}
	left := false
	if infoErr == nil && info.Swarm.LocalNodeState == dockerapi.StateActive {
		if err := c.SwarmLeave(ctx, false); err != nil && dockerapi.StatusOf(err) != 503 {
			return out, fmt.Errorf("%s leaving the swarm: %w", name, err)
		}
		if i, err := c.Info(ctx); err == nil && i.Swarm.LocalNodeState == dockerapi.StateInactive {
			left = true
		}
		rc.Log().Info("left the swarm", "node_id", id)
	}
	err = poll(ctx, 60*time.Second, func() error {
		n, err := mgr.Node(ctx, id)
		if dockerapi.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		// A node seen to leave is removed at once; otherwise the managers
		// must see it down first (docker refuses to remove a node that is
		// up without force).
		if !left && n.Status.State != dockerapi.NodeDown {
			return fmt.Errorf("the managers still see %s %s", name, n.Status.State)
		}
		return mgr.NodeRemove(ctx, id, left)
	})
	if err != nil {
		return out, fmt.Errorf("removing %s from the node list: %w", name, err)
	}
	rc.Log().Info("removed from the swarm's node list", "node_id", id)
	return out, nil
}

func nodeByHostname(ctx context.Context, mgr *dockerapi.Client, name string) (string, error) {
	nodes, err := mgr.Nodes(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.Description.Hostname == name {
			return n.ID, nil
		}
	}
	return "", nil
}

// waitBackendIdle waits until the frontend no longer sends anything to the
// node: its backend is gone, or draining with no connection left.
func waitBackendIdle(ctx context.Context, issuer pki.Issuer, d NetsvcdOut, frontend, node string) error {
	cli, err := netsvcClient(ctx, issuer, d)
	if err != nil {
		return err
	}
	defer cli.Close()
	return poll(ctx, 30*time.Second, func() error {
		st, err := cli.Status(ctx, frontend)
		if err != nil {
			return err
		}
		for _, b := range st.Backends {
			if b.Name != node {
				continue
			}
			if !b.Draining {
				return fmt.Errorf("frontend %s still sends new connections to %s", frontend, node)
			}
			if b.Active > 0 {
				return fmt.Errorf("frontend %s still has %d connection(s) on %s", frontend, b.Active, node)
			}
		}
		return nil
	})
}
