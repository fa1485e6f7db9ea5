package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
)

// TestHighAvailability deploys 3 managers and a worker: managers join one
// at a time, each given every manager's address; killing the leader's
// dockerd leaves the swarm with a leader; removing managers while one is
// down is refused, naming the numbers, before anything changes; the next
// plan shows the drift and repairs only that node.
func TestHighAvailability(t *testing.T) {
	needs(t)
	ctx := ctxT(t, 10*time.Minute)
	cfg, _, logs := testConfig(t, "e2e-swarm-ha", 3, 1)
	events := &syncBuffer{}
	cfg.Events = graph.JSONLines(events)

	s, err := swarm.Up(ctx, cfg)
	require.NoError(t, err)
	t.Logf("deployed 3+1 in %v", s.Elapsed)
	byName := map[string]*provider.Node{}
	for _, n := range s.Nodes() {
		byName[n.Name] = n
	}
	op := operator(t, s, byName["m2"])
	require.Equal(t, []string{"m1 ready active manager", "m2 ready active manager", "m3 ready active manager", "w1 ready active worker"}, swarmNodes(t, ctx, op))
	require.Equal(t, []string{"m1", "m2", "m3", "w1"}, s.Answered)

	t.Run("ManagersJoinOneAtATimeWithEveryManagerAddress", func(t *testing.T) {
		// m3 started only after m2 had joined and was reachable.
		m2Done, m3Start := eventAt(t, events, "swarm-manager@m2", "succeeded"), eventAt(t, events, "swarm-manager@m3", "running")
		require.True(t, m3Start.After(m2Done), "m3 joined after m2 was reachable (m2 done %v, m3 started %v)", m2Done, m3Start)
		// m3's join was given both managers, the leader first.
		addr := func(n string) string { return byName[n].InterfaceAddr.String() + ":2377" }
		require.Contains(t, logs.String(), "node=m3 swarm_role=manager remote_addrs="+addr("m1")+","+addr("m2"))
		require.Contains(t, logs.String(), "node=m2 swarm_role=manager remote_addrs="+addr("m1"))
	})

	t.Run("ACrashedEngineIsRestartedByItsSupervisor", func(t *testing.T) {
		// SIGKILL is a crash: the docker unit's supervisor (on-failure)
		// starts dockerd again, and the node serves again without a plan.
		w1 := byName["w1"]
		before := unitOf(t, ctx, w1)
		kill(t, ctx, w1, "KILL", before.MainPID)
		require.Eventually(t, func() bool {
			st := unitOf(t, ctx, w1)
			return st.Running() && st.MainPID != before.MainPID && st.Restarts > before.Restarts
		}, 60*time.Second, 250*time.Millisecond, "the supervisor restarted dockerd on w1")
		require.Eventually(t, func() bool {
			seen, _, err := swarm.ReachAll(ctx, s.URL, []string{"w1"}, 5*time.Second)
			return err == nil && slices.Contains(seen, "w1")
		}, 90*time.Second, time.Second, "w1 serves again")
		t.Logf("dockerd on w1 killed; restarted by its supervisor: %s", unitOf(t, ctx, w1))
	})

	t.Run("StoppingTheLeadersEngineKeepsALeader", func(t *testing.T) {
		leader := leaderOf(t, ctx, op)
		require.Equal(t, "m1", leader, "the first manager leads")
		// SIGTERM is a clean stop: the supervisor leaves it stopped, and
		// the next plan's drift check is what repairs it.
		kill(t, ctx, byName[leader], "TERM", unitOf(t, ctx, byName[leader]).MainPID)
		var now string
		require.Eventually(t, func() bool {
			ns, err := op.Nodes(ctx)
			if err != nil {
				return false
			}
			for _, n := range ns {
				if n.ManagerStatus != nil && n.ManagerStatus.Leader && n.Description.Hostname != leader {
					now = n.Description.Hostname
					return true
				}
			}
			return false
		}, 60*time.Second, 250*time.Millisecond, "another manager leads")
		require.False(t, unitOf(t, ctx, byName[leader]).Running())
		t.Logf("stopped dockerd on %s (%s); %s leads now", leader, unitOf(t, ctx, byName[leader]), now)
	})

	t.Run("RemovingManagersThatWouldLoseQuorumIsRefused", func(t *testing.T) {
		shrink := cfg
		shrink.Managers = 1 // m2 and m3 would go, with m1 down
		before := traceLab(t, ctx, cfg)
		_, err := swarm.Up(ctx, shrink)
		var qe *swarm.QuorumError
		require.ErrorAs(t, err, &qe)
		t.Logf("refused: %v", err)
		require.Equal(t, 3, qe.Managers)
		require.Equal(t, 2, qe.Reachable)
		require.Equal(t, []string{"m1"}, qe.Unreachable)
		require.Equal(t, 1, qe.After)
		require.Equal(t, 0, qe.ReachableAfter)
		require.Contains(t, err.Error(), "the swarm has 3 managers, 2 reachable (unreachable: m1); afterwards 0 of 1 would be reachable, fewer than the 1 a quorum needs")
		// Nothing changed: every node is still there, and in the swarm with
		// its role (their states are "unknown" for a moment after a leader
		// change).
		require.Len(t, traceLab(t, ctx, cfg).infos, len(before.infos))
		ns, err := op.Nodes(ctx)
		require.NoError(t, err)
		var roles []string
		for _, n := range ns {
			roles = append(roles, n.Description.Hostname+" "+n.Spec.Role+" "+n.Spec.Availability)
		}
		sortStrings(roles)
		require.Equal(t, []string{"m1 manager active", "m2 manager active", "m3 manager active", "w1 worker active"}, roles)
	})

	t.Run("NextPlanRepairsOnlyThatNode", func(t *testing.T) {
		again, err := swarm.Up(ctx, cfg)
		require.NoError(t, err)
		st, ok := again.Plan.Step("docker-engine-manager@m1")
		require.True(t, ok)
		require.Equal(t, graph.ActionRun, st.Action)
		require.Contains(t, st.Reason, "drifted: dockerd is not running on m1 (stopped")
		done := succeeded(again.Result)
		require.Contains(t, done, "docker-engine-manager@m1")
		for _, id := range done {
			require.True(t, strings.HasSuffix(id, "@m1"), "only m1's node-roles ran, not %s", id)
		}
		t.Logf("repaired in %v: %v", again.Elapsed, done)
		require.Eventually(t, func() bool {
			ns, err := op.Nodes(ctx)
			if err != nil {
				return false
			}
			reachable := 0
			for _, n := range ns {
				if n.ManagerStatus != nil && n.ManagerStatus.Reachability == dockerapi.Reachable && n.Status.State == dockerapi.NodeReady {
					reachable++
				}
			}
			return reachable == 3
		}, 60*time.Second, 250*time.Millisecond, "all three managers are reachable again")
		require.Equal(t, []string{"m1", "m2", "m3", "w1"}, again.Answered)
	})

	t.Run("ScalingManagersInDemotesThemOneAtATime", func(t *testing.T) {
		one := cfg
		one.Managers = 1
		s1, err := swarm.Up(ctx, one)
		require.NoError(t, err)
		require.Equal(t, []string{"m2", "m3"}, s1.Removed)
		require.Equal(t, "run: new", ran(s1.Plan)["swarm-leave@m2"])
		require.Equal(t, "run: new", ran(s1.Plan)["swarm-leave@m3"])
		require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker"}, swarmNodes(t, ctx, operator(t, s1, byName["m1"])))
		require.Equal(t, []string{"m1", "w1"}, s1.Answered)
		// Demoted first, one at a time: m3's leave started after m2's was done.
		require.Contains(t, logs.String(), `msg=demoted role=swarm-leave node=m2`)
		require.Contains(t, logs.String(), `msg=demoted role=swarm-leave node=m3`)
		require.True(t, eventAt(t, events, "swarm-leave@m3", "running").After(eventAt(t, events, "swarm-leave@m2", "succeeded")), "m3 left after m2")
		t.Logf("3 → 1 managers in %v", s1.Elapsed)
	})
}

func unitOf(t *testing.T, ctx context.Context, n *provider.Node) provider.UnitStatus {
	t.Helper()
	units, err := provider.UnitsOf(n)
	require.NoError(t, err)
	st, err := units.UnitStatus(ctx, swarm.DockerUnit)
	require.NoError(t, err)
	return st
}

// kill sends signal sig to pid in node n.
func kill(t *testing.T, ctx context.Context, n *provider.Node, sig string, pid int) {
	t.Helper()
	require.NotZero(t, pid)
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"kill", "-" + sig, fmt.Sprint(pid)}})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, string(res.Stderr))
}

// eventAt returns the time of the last event of node-role id in state, in
// the JSON lines of events.
func eventAt(t *testing.T, events *syncBuffer, id, state string) time.Time {
	t.Helper()
	var at time.Time
	for _, line := range strings.Split(strings.TrimSpace(events.String()), "\n") {
		var e struct {
			Time  time.Time `json:"time"`
			ID    string    `json:"id"`
			State string    `json:"state"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		if e.ID == id && e.State == state {
			at = e.Time
		}
	}
	require.False(t, at.IsZero(), "no %s event of %s", state, id)
	return at
}

func leaderOf(t *testing.T, ctx context.Context, c *dockerapi.Client) string {
	t.Helper()
	ns, err := c.Nodes(ctx)
	require.NoError(t, err)
	for _, n := range ns {
		if n.ManagerStatus != nil && n.ManagerStatus.Leader {
			return n.Description.Hostname
		}
	}
	t.Fatal(fmt.Sprintf("no leader among %d nodes", len(ns)))
	return ""
}
