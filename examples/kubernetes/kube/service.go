package kube

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// service is one long-running program on a node, run as a unit: the systemd
// unit the hard way writes (/etc/systemd/system/NAME.service) on real
// machines, the same definition under the lab's supervisor in lab nodes.
type service struct {
	Name        string
	Description string
	Args        []string
	// Requires names units this one needs running first (containerd for
	// the kubelet).
	Requires []string
}

// configEnv carries the digest of the files a program reads at start only
// (its certificates, its config) in the unit's definition, so a change of
// any of them changes the definition, and installing it restarts the
// program exactly once.
const configEnv = "MASON_CONFIG_DIGEST"

func (s service) unit(sig string) provider.Unit {
	return provider.Unit{Name: s.Name, Description: s.Description, Documentation: "https://kubernetes.io/docs/",
		Command: s.Args, Env: []string{configEnv + "=" + sig}, Restart: provider.RestartOnFailure,
		RestartDelay: 5 * time.Second, StopTimeout: 30 * time.Second, LimitNOFILE: 65536,
		Requires: s.Requires, After: s.Requires}
}

// ensure installs the unit and makes sure it runs: a new or changed
// definition (flags, or sig: the digest of what it reads at start) starts
// or restarts it once; an unchanged one leaves a running program alone.
func (s service) ensure(ctx context.Context, rc *role.Context, sig string) error {
	units, err := provider.UnitsOf(rc.Node())
	if err != nil {
		return err
	}
	change, err := units.InstallUnit(ctx, s.unit(sig))
	if err != nil {
		return fmt.Errorf("unit %s on %s: %w", s.Name, rc.Node().Name, err)
	}
	rc.Log().Info("unit installed", "unit", s.Name, "change", fmt.Sprint(change))
	return nil
}

// running reports whether the unit's program runs.
func (s service) running(ctx context.Context, n *provider.Node) bool {
	units, err := provider.UnitsOf(n)
	if err != nil {
		return false
	}
	st, err := units.UnitStatus(ctx, s.Name)
	return err == nil && st.Running()
}

// logTail returns the last lines of the unit's output, for errors.
func (s service) logTail(ctx context.Context, n *provider.Node) string {
	units, err := provider.UnitsOf(n)
	if err != nil {
		return err.Error()
	}
	out, _ := units.UnitLogs(ctx, s.Name, 12)
	return out
}

// waitFor retries probe until it succeeds, the unit stops running, or limit
// passes. A unit that stopped fails at once with its last log lines.
func (s service) waitFor(ctx context.Context, n *provider.Node, limit time.Duration, probe func() error) error {
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(limit)), ctx)
	err := backoff.Retry(func() error {
		if !s.running(ctx, n) {
			return backoff.Permanent(fmt.Errorf("unit %s is not running; its last lines:\n%s", s.Name, s.logTail(ctx, n)))
		}
		return probe()
	}, wait)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", s.Name, n.Name, err)
	}
	return nil
}

// dialable is a probe that a TCP port accepts connections.
func dialable(ctx context.Context, addr string) func() error {
	return func() error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// driftIfStopped is the Check of every role that runs a unit.
func driftIfStopped(ctx context.Context, rc *role.Context, s service) string {
	if !s.running(ctx, rc.Node()) {
		return s.Name + " is not running on " + rc.Node().Name
	}
	return ""
}
