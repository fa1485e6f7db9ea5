package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Engine runs Docker's engine on a worker: it writes daemon.json and runs
// dockerd as a unit (a systemd unit on real machines, supervised by the
// lab in lab nodes) with the Engine API on the node's address, --tlsverify, its
// server certificate from the "docker" authority, and only clients with a
// certificate from that authority let in.
//
// It is idempotent: a running engine with the same daemon.json is left
// alone, a stopped one is started again. When a setting changes on a node
// that is in the swarm, it rolls: drain the node, wait until its tasks
// stopped, write the new daemon.json, restart dockerd, wait until the node
// is Ready, activate it and wait until its global services run there
// again. The deployment rolls the role over its nodes in batches behind a
// breaker (see [Deployment]).
type Engine struct{}

// ManagerEngine is [Engine] on the managers, under its own name so that
// managers roll one at a time, and a restart that would cost the raft
// quorum is refused.
type ManagerEngine struct{ Engine }

// EngineIn is the engine's certificate and settings.
type EngineIn struct {
	Cert       role.Same[EngineCertOut]
	Labels     []string `attr:"docker.labels"`
	LogMaxSize string   `attr:"docker.log_max_size"`
	Issuer     role.Uses[pki.Issuer]
	Units      role.Uses[provider.Units]
}

// EngineOut is a running engine.
type EngineOut struct {
	Node string
	// IP is the node's interface address; API is the engine's mutual-TLS
	// endpoint on it (IP:2376).
	IP  string
	API string
}

// Meta implements role.Role.
func (Engine) Meta() role.Meta {
	return role.Meta{Name: "docker-engine", Version: "1", Doc: "writes daemon.json and runs dockerd with mutual TLS on the node's address"}
}

// Meta implements role.Role.
func (ManagerEngine) Meta() role.Meta {
	m := Engine{}.Meta()
	m.Name, m.Doc = "docker-engine-manager", m.Doc+" (managers: one at a time, quorum kept)"
	return m
}

// drainLabel marks a node the engine role drained for a restart, so that a
// later run (after a failed restart was fixed) activates it again, and a
// node an operator drained stays drained.
const drainLabel = "mason.drained-for"

// daemonConfig is the node's daemon.json.
func daemonConfig(ip string, in EngineIn) ([]byte, error) {
	files := in.Cert.Value.Files
	cfg := map[string]any{
		"hosts":     []string{"tcp://" + hostPort(ip, dockerapi.Port), "unix:///run/docker.sock"},
		"tls":       true,
		"tlsverify": true,
		"tlscacert": files.CA,
		"tlscert":   files.Cert,
		"tlskey":    files.Key,
		"labels":    in.Labels,
		"log-opts":  map[string]string{"max-size": in.LogMaxSize},
	}
	if in.Labels == nil {
		cfg["labels"] = []string{}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n'), err
}

// Run implements role.Role.
func (Engine) Run(ctx context.Context, rc *role.Context, in EngineIn) (EngineOut, error) {
	return runEngine(ctx, rc, in, false)
}

// Run implements role.Role.
func (ManagerEngine) Run(ctx context.Context, rc *role.Context, in EngineIn) (EngineOut, error) {
	return runEngine(ctx, rc, in, true)
}

// Check reports drift when dockerd does not answer over mutual TLS, or
// runs with another daemon.json than the one it was given.
//
// The output carries no digest of daemon.json, so a changed setting re-runs
// only the engines: what waits for them sees the same output and is not
// re-run.
func (Engine) Check(ctx context.Context, rc *role.Context, in EngineIn, last EngineOut) (string, error) {
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return "", err
	}
	c := e.at(last.IP)
	defer c.Close()
	if d, err := unitDrift(ctx, in.Units.Value, rc.Node().Name, DockerUnit, "dockerd"); d != "" || err != nil {
		return d, err
	}
	if err := steady(ctx, func(ctx context.Context) error { return c.Ping(ctx) }); err != nil {
		return "dockerd on " + rc.Node().Name + " does not answer at https://" + last.API, nil
	}
	want, err := daemonConfig(last.IP, in)
	if err != nil {
		return "", err
	}
	cur, err := rc.Node().Transport.Get(ctx, DaemonJSON)
	if err != nil || !bytes.Equal(cur, want) {
		return DaemonJSON + " on " + rc.Node().Name + " was changed", nil
	}
	return "", nil
}

func runEngine(ctx context.Context, rc *role.Context, in EngineIn, manager bool) (EngineOut, error) {
	n := rc.Node()
	if !n.InterfaceAddr.IsValid() {
		return EngineOut{}, fmt.Errorf("node %s has no interface address", n.Name)
	}
	ip := n.InterfaceAddr.String()
	want, err := daemonConfig(ip, in)
	if err != nil {
		return EngineOut{}, err
	}
	out := EngineOut{Node: n.Name, IP: ip, API: hostPort(ip, dockerapi.Port)}
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return EngineOut{}, err
	}
	c := e.at(ip)
	defer c.Close()

	units := in.Units.Value
	cur, _ := n.Transport.Get(ctx, DaemonJSON)
	same := bytes.Equal(cur, want)
	st, err := units.UnitStatus(ctx, DockerUnit)
	if err != nil {
		return EngineOut{}, err
	}
	up := st.Running() && c.Ping(ctx) == nil
	restart := false
	switch {
	case up && same:
		// Converged, unless a restart was interrupted after the drain.
		return out, finishRestart(ctx, rc, e, c)
	case up:
		info, err := c.Info(ctx)
		if err != nil {
			return EngineOut{}, err
		}
		if info.Swarm.LocalNodeState == dockerapi.StateActive {
			if err := drainForRestart(ctx, rc, e, info, manager); err != nil {
				return EngineOut{}, err
			}
		}
		restart = true
	}
	if !same {
		if err := rc.WriteFile(ctx, DaemonJSON, want, 0o644); err != nil {
			return EngineOut{}, err
		}
	}
	// The unit's definition never changes (daemon.json holds the
	// settings): InstallUnit starts it when it does not run and leaves a
	// running one alone, so a new daemon.json takes a restart.
	change, err := units.InstallUnit(ctx, dockerdUnit(dockerdPath))
	if err != nil {
		return EngineOut{}, fmt.Errorf("the docker unit on %s: %w", n.Name, err)
	}
	if restart && change == provider.UnitUnchanged {
		rc.Log().Info("restarting dockerd with the new daemon.json")
		if err := units.RestartUnit(ctx, DockerUnit); err != nil {
			return EngineOut{}, fmt.Errorf("restarting dockerd on %s: %w", n.Name, err)
		}
	}
	if err := waitUnit(ctx, units, n.Name, DockerUnit, 60*time.Second, func() error { return c.Ping(ctx) }); err != nil {
		return EngineOut{}, err
	}
	return out, finishRestart(ctx, rc, e, c)
}

// dockerdPath is Debian's dockerd (docker.io).
const dockerdPath = "/usr/sbin/dockerd"

// drainForRestart drains the node through a manager and waits until no
// task runs on it. A manager is restarted only when the others keep the
// raft quorum.
func drainForRestart(ctx context.Context, rc *role.Context, e *engines, info dockerapi.Info, manager bool) error {
	mgr, err := managerOf(ctx, e, info, true)
	if err != nil {
		return err
	}
	defer mgr.Close()
	if manager {
		if err := checkQuorum(ctx, mgr, []string{info.Swarm.NodeID}, false, "restart manager "+rc.Node().Name); err != nil {
			return err
		}
	}
	// A node an operator drained stays drained (and is not marked): only
	// the engine role's own drain is undone after the restart.
	changed, err := updateNode(ctx, mgr, info.Swarm.NodeID, func(s *dockerapi.NodeSpec) bool {
		if s.Availability == dockerapi.AvailabilityDrain {
			return false
		}
		s.Availability = dockerapi.AvailabilityDrain
		s.Labels[drainLabel] = "engine-restart"
		return true
	})
	if err != nil {
		return fmt.Errorf("draining %s: %w", rc.Node().Name, err)
	}
	if changed {
		rc.Log().Info("draining for the engine restart", "node_id", info.Swarm.NodeID)
	}
	return waitNoTasks(ctx, mgr, info.Swarm.NodeID, rc.Node().Name)
}

// finishRestart activates the node again if the engine role drained it,
// once the swarm sees it Ready, and waits until the global services run on
// it again.
func finishRestart(ctx context.Context, rc *role.Context, e *engines, c *dockerapi.Client) error {
	var info dockerapi.Info
	err := poll(ctx, 60*time.Second, func() error {
		var err error
		if info, err = c.Info(ctx); err != nil {
			return err
		}
		if s := info.Swarm.LocalNodeState; s == dockerapi.StatePending {
			return fmt.Errorf("%s is still joining its swarm", rc.Node().Name)
		}
		return nil
	})
	if err != nil || info.Swarm.LocalNodeState != dockerapi.StateActive {
		return err
	}
	mgr, err := managerOf(ctx, e, info, false)
	if err != nil {
		return err
	}
	defer mgr.Close()
	id := info.Swarm.NodeID
	node, err := mgr.Node(ctx, id)
	if err != nil {
		return err
	}
	if node.Spec.Labels[drainLabel] == "" {
		return nil
	}
	err = poll(ctx, 60*time.Second, func() error {
		if node, err = mgr.Node(ctx, id); err != nil {
			return err
		}
		if node.Status.State != dockerapi.NodeReady {
			return fmt.Errorf("swarm node %s is %s, not ready", rc.Node().Name, node.Status.State)
		}
		if node.ManagerStatus != nil && node.ManagerStatus.Reachability != dockerapi.Reachable {
			return fmt.Errorf("manager %s is %s", rc.Node().Name, node.ManagerStatus.Reachability)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := updateNode(ctx, mgr, id, func(s *dockerapi.NodeSpec) bool {
		s.Availability = dockerapi.AvailabilityActive
		delete(s.Labels, drainLabel)
		return true
	}); err != nil {
		return fmt.Errorf("activating %s: %w", rc.Node().Name, err)
	}
	rc.Log().Info("active again after the engine restart", "node_id", id)
	return waitGlobalTasks(ctx, mgr, id, rc.Node().Name)
}

// managerOf returns a client of a manager of info's swarm that answers:
// another node's when one does (preferOthers), else the node's own. It
// waits up to 30 seconds for one (a manager that just restarted takes a
// moment to catch up with the raft log).
func managerOf(ctx context.Context, e *engines, info dockerapi.Info, preferOthers bool) (*dockerapi.Client, error) {
	var c *dockerapi.Client
	err := poll(ctx, 30*time.Second, func() error {
		var err error
		c, err = answeringManager(ctx, e, info, preferOthers)
		return err
	})
	return c, err
}

func answeringManager(ctx context.Context, e *engines, info dockerapi.Info, preferOthers bool) (*dockerapi.Client, error) {
	self := info.Swarm.NodeID
	peers := slices.Clone(info.Swarm.RemoteManagers)
	slices.SortFunc(peers, func(a, b dockerapi.Peer) int {
		// Others first when asked; then by address, for a stable choice.
		ao, bo := a.NodeID == self, b.NodeID == self
		if ao != bo && preferOthers {
			if ao {
				return 1
			}
			return -1
		}
		if a.Addr < b.Addr {
			return -1
		}
		return 1
	})
	var errs []string
	for _, p := range peers {
		host, _, err := splitHost(p.Addr)
		if err != nil {
			continue
		}
		c := e.at(host)
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		i, err := c.Info(cctx)
		cancel()
		if err == nil && i.Swarm.ControlAvailable {
			return c, nil
		}
		c.Close()
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			errs = append(errs, p.Addr+" is not an active manager")
		}
	}
	return nil, fmt.Errorf("no manager of the swarm answers (tried %d: %v)", len(peers), errs)
}

func splitHost(addr string) (string, int, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, err := strconv.Atoi(addr[i+1:])
			return addr[:i], p, err
		}
	}
	return addr, 0, fmt.Errorf("%q has no port", addr)
}

func cloneLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// waitNoTasks waits until no task runs on the node.
func waitNoTasks(ctx context.Context, mgr *dockerapi.Client, nodeID, name string) error {
	return poll(ctx, 60*time.Second, func() error {
		ts, err := mgr.Tasks(ctx, map[string][]string{"node": {nodeID}})
		if err != nil {
			return err
		}
		n := 0
		for _, t := range ts {
			if t.DesiredState == "running" || t.Status.State == "running" || t.Status.State == "starting" {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%d task(s) still run on %s", n, name)
		}
		return nil
	})
}

// waitGlobalTasks waits until every global service runs a task on the
// node.
func waitGlobalTasks(ctx context.Context, mgr *dockerapi.Client, nodeID, name string) error {
	return poll(ctx, 60*time.Second, func() error {
		svcs, err := mgr.Services(ctx)
		if err != nil {
			return err
		}
		ts, err := mgr.Tasks(ctx, map[string][]string{"node": {nodeID}, "desired-state": {"running"}})
		if err != nil {
			return err
		}
		for _, s := range svcs {
			if s.Spec.Mode.Global == nil {
				continue
			}
			ok := false
			for _, t := range ts {
				ok = ok || (t.ServiceID == s.ID && t.Status.State == "running")
			}
			if !ok {
				return fmt.Errorf("global service %s does not run on %s yet", s.Spec.Name, name)
			}
		}
		return nil
	})
}
