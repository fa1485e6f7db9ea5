package swarm

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/role"
)

// MemberOut is a node in the swarm: what [Manager] and [Worker] produce.
type MemberOut struct {
	Node      string
	NodeID    string
	Role      string // dockerapi.RoleManager or RoleWorker
	Addr      string // swarm address, IP:2377
	EngineIP  string
	ClusterID string
}

// joinReq is what a join needs besides the node itself.
type joinReq struct {
	init  InitOut
	role  string
	token string
	// managers are engine addresses where the swarm's managers may be
	// found (the first manager's is always tried too).
	managers []string
}

// join makes the node a member of the deployment's swarm with the given
// role, unless it already is one (a join never happens twice: the engine
// is asked first, so a re-run or a run after a crash finds the node in).
// It returns once the managers see the node ready (workers) or reachable
// (managers).
func join(ctx context.Context, rc *role.Context, e *engines, ip string, req joinReq) (MemberOut, error) {
	name := rc.Node().Name
	c := e.at(ip)
	defer c.Close()
	info, err := settled(ctx, c, name)
	if err != nil {
		return MemberOut{}, err
	}
	mgr, err := ourManager(ctx, e, req)
	if err != nil {
		return MemberOut{}, err
	}
	defer mgr.Close()

	switch info.Swarm.LocalNodeState {
	case dockerapi.StateActive:
		if _, err := mgr.Node(ctx, info.Swarm.NodeID); dockerapi.IsNotFound(err) {
			return MemberOut{}, backoff.Permanent(fmt.Errorf("node %s is already in another swarm (its managers: %v), not in deployment %q's swarm %s: it is not joined again; make it leave that swarm (docker swarm leave) first",
				name, peerAddrs(info.Swarm.RemoteManagers), rc.Deployment(), req.init.ClusterID))
		} else if err != nil {
			return MemberOut{}, err
		}
	case dockerapi.StateInactive:
		addrs, err := managerAddrs(ctx, mgr)
		if err != nil {
			return MemberOut{}, err
		}
		rc.Log().Info("joining the swarm", "swarm_role", req.role, "remote_addrs", strings.Join(addrs, ","))
		err = c.SwarmJoin(ctx, dockerapi.JoinRequest{
			ListenAddr:    hostPort(ip, SwarmPort),
			AdvertiseAddr: hostPort(ip, SwarmPort),
			DataPathAddr:  ip,
			RemoteAddrs:   addrs,
			JoinToken:     req.token,
		})
		// After 20s the engine answers that the join goes on in the
		// background; wait for it below like for a quick one.
		if err != nil && !strings.Contains(err.Error(), "Timeout was reached") {
			return MemberOut{}, fmt.Errorf("%s joining the swarm as a %s: %w", name, req.role, err)
		}
		if info, err = settled(ctx, c, name); err != nil {
			return MemberOut{}, err
		}
		if info.Swarm.LocalNodeState != dockerapi.StateActive {
			return MemberOut{}, fmt.Errorf("%s did not join the swarm: state %q: %s", name, info.Swarm.LocalNodeState, info.Swarm.Error)
		}
	default:
		return MemberOut{}, fmt.Errorf("the engine on %s is in swarm state %q (%s): repair it (docker swarm leave --force) and run again", name, info.Swarm.LocalNodeState, info.Swarm.Error)
	}

	id := info.Swarm.NodeID
	if err := ensureRole(ctx, rc, mgr, id, req.role); err != nil {
		return MemberOut{}, err
	}
	if err := waitMember(ctx, mgr, id, name, req.role); err != nil {
		return MemberOut{}, err
	}
	if err := removeStale(ctx, rc, mgr, id, name); err != nil {
		return MemberOut{}, err
	}
	return MemberOut{Node: name, NodeID: id, Role: req.role, Addr: hostPort(ip, SwarmPort), EngineIP: ip, ClusterID: req.init.ClusterID}, nil
}

// ourManager returns a client of a manager of the deployment's swarm.
func ourManager(ctx context.Context, e *engines, req joinReq) (*dockerapi.Client, error) {
	cands := append([]string{req.init.EngineIP}, req.managers...)
	slices.Sort(cands[1:])
	cands = slices.Compact(cands)
	var errs []string
	for _, ip := range cands {
		c := e.at(ip)
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		info, err := c.Info(cctx)
		cancel()
		if err == nil && info.Swarm.ControlAvailable && info.Swarm.Cluster != nil && info.Swarm.Cluster.ID == req.init.ClusterID {
			return c, nil
		}
		c.Close()
		if err == nil {
			err = fmt.Errorf("not an active manager of swarm %s", req.init.ClusterID)
		}
		errs = append(errs, ip+": "+err.Error())
	}
	return nil, fmt.Errorf("no manager of the deployment's swarm answers: %s", strings.Join(errs, "; "))
}

// managerAddrs lists the swarm addresses of every manager: reachable ones
// first, the leader first of all (the engine joins through the first and
// learns the others from it).
func managerAddrs(ctx context.Context, mgr *dockerapi.Client) ([]string, error) {
	nodes, err := mgr.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the swarm's managers: %w", err)
	}
	rank := func(n dockerapi.Node) int {
		switch {
		case n.ManagerStatus.Leader:
			return 0
		case n.ManagerStatus.Reachability == dockerapi.Reachable:
			return 1
		}
		return 2
	}
	var ms []dockerapi.Node
	for _, n := range nodes {
		if n.ManagerStatus != nil && n.ManagerStatus.Addr != "" {
			ms = append(ms, n)
		}
	}
	slices.SortFunc(ms, func(a, b dockerapi.Node) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.ManagerStatus.Addr, b.ManagerStatus.Addr)
	})
	var out []string
	for _, n := range ms {
		out = append(out, n.ManagerStatus.Addr)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the swarm lists no manager address")
	}
	return out, nil
}

// ensureRole promotes or demotes the node to role (a worker that becomes a
// manager in the deployment is promoted, not joined again).
func ensureRole(ctx context.Context, rc *role.Context, mgr *dockerapi.Client, id, want string) error {
	return poll(ctx, 30*time.Second, func() error {
		n, err := mgr.Node(ctx, id)
		if err != nil {
			return err
		}
		if n.Spec.Role == want {
			return nil
		}
		if want == dockerapi.RoleWorker {
			if err := checkQuorum(ctx, mgr, []string{id}, true, "demote manager "+rc.Node().Name); err != nil {
				return backoff.Permanent(err)
			}
		}
		rc.Log().Info("changing the node's swarm role", "from", n.Spec.Role, "to", want)
		_, err = updateNode(ctx, mgr, id, func(s *dockerapi.NodeSpec) bool { s.Role = want; return true })
		if dockerapi.StatusOf(err) == http.StatusBadRequest {
			return backoff.Permanent(err)
		}
		if err == nil {
			err = fmt.Errorf("%s: role change to %s not seen yet", rc.Node().Name, want)
		}
		return err
	})
}

// updateNode changes the node's spec with change (which reports whether
// it changed anything) and writes it at the version it read, reading again
// when a concurrent change (a demotion's raft change, the node's own
// status) moved the version first ("update out of sequence").
func updateNode(ctx context.Context, mgr *dockerapi.Client, id string, change func(*dockerapi.NodeSpec) bool) (bool, error) {
	changed := false
	err := poll(ctx, 30*time.Second, func() error {
		n, err := mgr.Node(ctx, id)
		if err != nil {
			return backoff.Permanent(err)
		}
		spec := n.Spec
		spec.Labels = cloneLabels(n.Spec.Labels)
		if changed = change(&spec); !changed {
			return nil
		}
		err = mgr.NodeUpdate(ctx, id, n.Version.Index, spec)
		if err != nil && strings.Contains(err.Error(), "out of sequence") {
			return err
		}
		if err != nil {
			return backoff.Permanent(err)
		}
		return nil
	})
	return changed, err
}

// waitMember waits until the managers see the node ready, and a manager
// reachable.
func waitMember(ctx context.Context, mgr *dockerapi.Client, id, name, role string) error {
	return poll(ctx, 90*time.Second, func() error {
		n, err := mgr.Node(ctx, id)
		if err != nil {
			return err
		}
		if n.Status.State != dockerapi.NodeReady {
			return fmt.Errorf("swarm node %s is %s, not ready", name, n.Status.State)
		}
		if role == dockerapi.RoleManager && (n.ManagerStatus == nil || n.ManagerStatus.Reachability != dockerapi.Reachable) {
			return fmt.Errorf("manager %s is not reachable yet", name)
		}
		return nil
	})
}

// removeStale removes the node list's entries of an earlier membership of
// the same node (it left, or lost its state, and joined again with a new
// node ID): they would stay, down, forever. An entry with the node's name
// and address is the same machine under its old ID, whatever state the
// managers still give it.
func removeStale(ctx context.Context, rc *role.Context, mgr *dockerapi.Client, id, name string) error {
	nodes, err := mgr.Nodes(ctx)
	if err != nil {
		return err
	}
	var addr string
	for _, n := range nodes {
		if n.ID == id {
			addr = n.Status.Addr
		}
	}
	for _, n := range nodes {
		if n.ID == id || n.Description.Hostname != name || n.ManagerStatus != nil {
			continue
		}
		down := n.Status.State == dockerapi.NodeDown
		if !down && n.Status.Addr != addr {
			continue
		}
		if err := mgr.NodeRemove(ctx, n.ID, !down); err != nil && !dockerapi.IsNotFound(err) {
			return fmt.Errorf("removing %s's stale entry %s from the node list: %w", name, n.ID, err)
		}
		rc.Log().Info("removed a stale entry of the node from the node list", "stale_node_id", n.ID)
	}
	return nil
}

func peerAddrs(ps []dockerapi.Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Addr
	}
	return out
}
