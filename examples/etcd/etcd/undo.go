package etcd

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Undo takes the member out of the cluster when its node leaves the
// deployment, the way an operator would: if it leads the cluster, it
// hands leadership to another member first (so clients see no election);
// then member-remove, through the other members; then, on the node, the
// member's unit is removed (a removed member stops by itself) and its
// data deleted, so that the node could join again as a new member.
//
// It is idempotent: a member no longer in the cluster is not removed
// again, and a node that is already gone (a forced removal) is skipped
// after the member-remove.
func (Member) Undo(ctx context.Context, rc *role.Context, last MemberOut) error {
	if err := memberRemove(ctx, rc, last); err != nil {
		return err
	}
	node := rc.Node()
	if node.Transport == nil {
		rc.Log().Info("node is gone: nothing to stop on it")
		return nil
	}
	units, err := provider.UnitsOf(node)
	if err != nil {
		return err
	}
	if err := units.RemoveUnit(ctx, UnitName); err != nil {
		return fmt.Errorf("removing the etcd unit: %w", err)
	}
	if _, err := rc.Exec(ctx, "rm", "-rf", DataDir, ConfigFile, PIDFile); err != nil {
		return fmt.Errorf("removing the member's data: %w", err)
	}
	rc.Log().Info("member stopped and its data removed")
	return nil
}

// memberRemove removes the member last describes from the cluster.
func memberRemove(ctx context.Context, rc *role.Context, last MemberOut) error {
	tlsCfg, err := controllerTLS(ctx, rc)
	if err != nil {
		return err
	}
	endpoints := slices.DeleteFunc(slices.Clone(last.Cluster), func(u string) bool { return u == last.ClientURL })
	if len(endpoints) == 0 {
		endpoints = []string{last.ClientURL} // an output from before Cluster was recorded
	}
	cli, err := Dial(endpoints, tlsCfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(500*time.Millisecond),
		backoff.WithMaxInterval(3*time.Second), backoff.WithMaxElapsedTime(2*time.Minute)), ctx)
	return backoff.Retry(func() error {
		cctx, cancel := withTimeout(ctx)
		defer cancel()
		list, err := cli.MemberList(cctx)
		if err != nil {
			return fmt.Errorf("listing the members at %v: %w", endpoints, err)
		}
		var self uint64
		var others []*memberInfo
		for _, m := range list.Members {
			if slices.Contains(m.PeerURLs, last.PeerURL) {
				self = m.ID
			} else if m.Name != "" && len(m.ClientURLs) > 0 {
				others = append(others, &memberInfo{id: m.ID, name: m.Name})
			}
		}
		if self == 0 {
			rc.Log().Info("member is not in the cluster (already removed)", "peer_url", last.PeerURL)
			return nil
		}
		if len(others) == 0 {
			return backoff.Permanent(fmt.Errorf("member %s is the cluster's last member: it cannot be removed (destroy the deployment instead)", last.Name))
		}
		if err := handOverLeadership(ctx, rc, last, self, others, tlsCfg); err != nil {
			return err
		}
		if _, err := cli.MemberRemove(cctx, self); err != nil {
			if strings.Contains(err.Error(), "member not found") {
				return nil
			}
			if strings.Contains(err.Error(), "unhealthy cluster") {
				rc.Log().Info("member-remove postponed: the cluster is still settling", "member", last.Name)
			}
			return fmt.Errorf("member-remove %s (%x): %w", last.Name, self, err)
		}
		rc.Log().Info("member-remove done", "member", last.Name, "id", fmt.Sprintf("%x", self))
		return nil
	}, wait)
}

type memberInfo struct {
	id   uint64
	name string
}

// handOverLeadership moves the cluster's leadership from the leaving
// member (if it leads) to the remaining member with the lowest name:
// removing a leader makes the others wait for an election timeout,
// during which writes stall.
func handOverLeadership(ctx context.Context, rc *role.Context, last MemberOut, self uint64, others []*memberInfo, tlsCfg *tls.Config) error {
	cli, err := Dial([]string{last.ClientURL}, tlsCfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := withTimeout(ctx)
	defer cancel()
	st, err := cli.Status(cctx, last.ClientURL)
	if err != nil {
		// The member does not answer (its node is gone): it leads no one
		// the others can still reach.
		rc.Log().Info("leaving member does not answer; removing it without a hand-over", "err", err.Error())
		return nil
	}
	if st.Leader != self {
		return nil
	}
	slices.SortFunc(others, func(a, b *memberInfo) int { return strings.Compare(a.name, b.name) })
	to := others[0]
	if _, err := cli.MoveLeader(cctx, to.id); err != nil {
		return fmt.Errorf("moving leadership from %s to %s: %w", last.Name, to.name, err)
	}
	rc.Log().Info("leadership handed over", "from", last.Name, "to", to.name)
	return nil
}
