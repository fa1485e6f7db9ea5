package swarm

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/masonops/mason/examples/swarm/dockerapi"
)

// QuorumError is a change refused because the swarm's managers would lose
// their raft quorum.
type QuorumError struct {
	// Change is what was refused ("remove manager m2").
	Change string
	// Managers and Reachable count the swarm's managers now.
	Managers, Reachable int
	// After and ReachableAfter count them after the change; Need is the
	// quorum of After.
	After, ReachableAfter, Need int
	// Unreachable names the managers that do not answer now.
	Unreachable []string
}

// Error implements error.
func (e *QuorumError) Error() string {
	down := ""
	if len(e.Unreachable) > 0 {
		down = " (unreachable: " + strings.Join(e.Unreachable, ", ") + ")"
	}
	if e.After == 0 {
		return fmt.Sprintf("refusing to %s: it is the last manager of the swarm; a swarm needs at least one", e.Change)
	}
	return fmt.Sprintf("refusing to %s: the swarm has %d managers, %d reachable%s; afterwards %d of %d would be reachable, fewer than the %d a quorum needs: repair the unreachable managers first",
		e.Change, e.Managers, e.Reachable, down, e.ReachableAfter, e.After, e.Need)
}

// checkQuorum says whether the swarm keeps its quorum when the managers
// among nodeIDs go: removed for good (remove: demoted, so the raft group
// shrinks) or only restarted (they stay members but do not answer for a
// while). A single manager may restart: there is no quorum to keep.
func checkQuorum(ctx context.Context, mgr *dockerapi.Client, nodeIDs []string, remove bool, change string) error {
	nodes, err := mgr.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("listing the swarm's managers: %w", err)
	}
	return quorum(nodes, nodeIDs, remove, change)
}

func quorum(nodes []dockerapi.Node, nodeIDs []string, remove bool, change string) error {
	e := &QuorumError{Change: change}
	going, goingReachable := 0, 0
	for _, n := range nodes {
		if n.ManagerStatus == nil {
			continue
		}
		e.Managers++
		reachable := n.ManagerStatus.Reachability == dockerapi.Reachable
		if reachable {
			e.Reachable++
		} else {
			e.Unreachable = append(e.Unreachable, n.Description.Hostname)
		}
		if slices.Contains(nodeIDs, n.ID) {
			going++
			if reachable {
				goingReachable++
			}
		}
	}
	sort.Strings(e.Unreachable)
	if going == 0 {
		return nil
	}
	e.After, e.ReachableAfter = e.Managers, e.Reachable-goingReachable
	if remove {
		e.After = e.Managers - going
	}
	if e.After == 0 {
		return e
	}
	if !remove && e.Managers == 1 {
		return nil
	}
	e.Need = e.After/2 + 1
	if e.ReachableAfter < e.Need {
		return e
	}
	return nil
}
