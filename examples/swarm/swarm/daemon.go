package swarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
)

// The long-running programs of the example are units (provider.Unit): on
// a machine with systemd the unit files an operator would write, in a lab
// node the same definitions run by the lab's supervisor. Either way they
// outlive the controller and end with the node.

// DockerUnit is the unit that runs dockerd; NetsvcdUnit the one that runs
// the network services daemon.
const (
	DockerUnit  = "docker"
	NetsvcdUnit = "mason-netsvcd"
)

// dockerdUnit runs dockerd, which reads everything else from daemon.json.
// Its supervisor restarts it after a crash (on-failure, like Debian's
// docker.service); a dockerd that was stopped, or that keeps failing, is
// the engine role's drift, repaired by the next plan.
func dockerdUnit(binary string) provider.Unit {
	return provider.Unit{
		Name:          DockerUnit,
		Description:   "Docker Engine with mutual TLS (deployed by mason's swarm example)",
		Documentation: "https://docs.docker.com/engine/reference/commandline/dockerd/",
		Command:       []string{binary},
		Restart:       provider.RestartOnFailure,
		RestartDelay:  time.Second,
		StopTimeout:   30 * time.Second,
		LimitNOFILE:   1048576,
		// Only systemd honours these: containers get cgroups delegated to
		// dockerd, and no task limit.
		Systemd: []string{"Delegate=yes", "TasksMax=infinity"},
	}
}

// netsvcdUnit runs the network services daemon; DNS and the load balancer
// must come back by themselves after a crash.
func netsvcdUnit(args []string) provider.Unit {
	return provider.Unit{
		Name:        NetsvcdUnit,
		Description: "mason network services: DNS and L4 load balancer (deployed by mason's swarm example)",
		Command:     args,
		Restart:     provider.RestartAlways,
		StopTimeout: 10 * time.Second,
	}
}

// waitUnit waits until ready returns nil while the unit runs; it fails at
// once, with the unit's last log lines, when the unit stops or fails
// first.
func waitUnit(ctx context.Context, units provider.Units, node, name string, max time.Duration, ready func() error) error {
	var last error
	err := poll(ctx, max, func() error {
		st, err := units.UnitStatus(ctx, name)
		if err != nil {
			return err
		}
		switch st.State {
		case provider.UnitStopped, provider.UnitFailed, provider.UnitRestarting, provider.UnitNotInstalled:
			logs, _ := units.UnitLogs(ctx, name, 3)
			return backoff.Permanent(fmt.Errorf("%s on %s does not run (%s); its last lines:\n%s", name, node, st, strings.TrimSpace(logs)))
		case provider.UnitRunning:
			last = ready()
			return last
		}
		return fmt.Errorf("%s on %s is %s", name, node, st)
	})
	if err != nil && last != nil && err == last {
		return fmt.Errorf("%s on %s did not become ready in %v: %w", name, node, max, err)
	}
	return err
}

// unitDrift describes a unit that does not run, or returns "".
func unitDrift(ctx context.Context, units provider.Units, node, name, what string) (string, error) {
	st, err := units.UnitStatus(ctx, name)
	if err != nil {
		return "", err
	}
	if !st.Running() {
		return fmt.Sprintf("%s is not running on %s (%s)", what, node, st), nil
	}
	return "", nil
}
