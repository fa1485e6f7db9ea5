package lab_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
)

// Clock is a role that runs a daemon on its node: the pattern every role
// follows that starts a long-running program (etcd, dockerd, a kubelet).
//
//  1. Describe the program as a provider.Unit, built only from the role's
//     input, so the same input gives the same unit.
//  2. Install it through the node's provider.Units (provider.UnitsOf):
//     unchanged, a running unit is left alone; changed, it restarts exactly
//     once; stopped or crashed, it starts again.
//  3. Wait until the daemon serves, and on failure return its last log
//     lines, so the error says why.
//  4. Check reports drift from UnitStatus, so the next plan re-runs the role
//     when the daemon is not running ("clock is not running on n2").
//
// The same role runs under systemd on ssh and vSphere machines and under the
// lab's supervisor in lab nodes.
type Clock struct{}

// ClockIn is the clock's input: its interval is part of the unit, so
// changing it restarts the daemon once.
type ClockIn struct {
	Every string `attr:"clock.every" default:"1"`
}

// ClockOut names the unit.
type ClockOut struct{ Unit string }

// Meta implements role.Role.
func (Clock) Meta() role.Meta {
	return role.Meta{Name: "clock", Version: "1", Doc: "runs a clock daemon"}
}

func (Clock) unit(in ClockIn) provider.Unit {
	return provider.Unit{
		Name:         "clock",
		Description:  "prints the time every " + in.Every + "s",
		Command:      []string{"/bin/sh", "-c", `while :; do date -u +tick-%s; sleep "$EVERY"; done`},
		Env:          []string{"EVERY=" + in.Every},
		Restart:      provider.RestartOnFailure,
		RestartDelay: time.Second,
	}
}

// Run implements role.Role.
func (c Clock) Run(ctx context.Context, rc *role.Context, in ClockIn) (ClockOut, error) {
	units, err := provider.UnitsOf(rc.Node())
	if err != nil {
		return ClockOut{}, err
	}
	u := c.unit(in)
	change, err := units.InstallUnit(ctx, u)
	if err != nil {
		return ClockOut{}, err
	}
	rc.Log().Info("clock unit installed", "change", change)
	// Serving, for a clock, is having ticked; a server would be dialled.
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(30*time.Second)), ctx)
	err = backoff.Retry(func() error {
		st, err := units.UnitStatus(ctx, u.Name)
		if err != nil {
			return err
		}
		logs, err := units.UnitLogs(ctx, u.Name, 5)
		if err != nil {
			return err
		}
		if st.State == provider.UnitFailed {
			return backoff.Permanent(fmt.Errorf("clock failed on %s (%s); last lines:\n%s", rc.Node().Name, st, logs))
		}
		if !st.Running() || !strings.Contains(logs, "tick-") {
			return fmt.Errorf("clock on %s has not ticked yet (%s)", rc.Node().Name, st)
		}
		return nil
	}, wait)
	return ClockOut{Unit: u.Name}, err
}

// Check implements role.Checker: a clock that does not run is drift.
func (Clock) Check(ctx context.Context, rc *role.Context, _ ClockIn, last ClockOut) (string, error) {
	units, err := provider.UnitsOf(rc.Node())
	if err != nil {
		return "", err
	}
	st, err := units.UnitStatus(ctx, last.Unit)
	if err != nil {
		return "", err
	}
	if !st.Running() {
		return fmt.Sprintf("clock is not running on %s (%s)", rc.Node().Name, st), nil
	}
	return "", nil
}

// A role starts a daemon by installing a unit through the node's Units
// and reports drift from its status. (Needs root; not run as a test here —
// TestClockRole runs the same code.)
func Example_roleStartsADaemon() {
	ctx := context.Background()
	l, err := lab.Open(ctx, lab.Options{Name: "clock-demo"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Teardown(ctx)
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "n1"})
	if err != nil {
		log.Fatal(err)
	}
	rc := role.NewContext(role.ContextOptions{Role: "clock", Node: n})
	out, err := Clock{}.Run(ctx, rc, ClockIn{Every: "1"})
	if err != nil {
		log.Fatal(err)
	}
	drift, err := Clock{}.Check(ctx, rc, ClockIn{Every: "1"}, out)
	fmt.Printf("drift %q, err %v\n", drift, err)
}

func TestClockRole(t *testing.T) {
	if err := lab.Check(); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("lab tests need root and ip/nsenter/iptables/mount: %v", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Open(ctx, lab.Options{Name: fmt.Sprintf("clock-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9), Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Teardown(context.Background())) })
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "n1"})
	require.NoError(t, err)
	rc := role.NewContext(role.ContextOptions{Role: "clock", Node: n})

	out, err := Clock{}.Run(ctx, rc, ClockIn{Every: "1"})
	require.NoError(t, err)
	drift, err := Clock{}.Check(ctx, rc, ClockIn{Every: "1"}, out)
	require.NoError(t, err)
	require.Empty(t, drift)

	units, err := provider.UnitsOf(n)
	require.NoError(t, err)
	require.NoError(t, units.StopUnit(ctx, out.Unit))
	drift, err = Clock{}.Check(ctx, rc, ClockIn{Every: "1"}, out)
	require.NoError(t, err)
	require.Equal(t, "clock is not running on n1 (stopped (last ended by signal 15))", drift)

	// The re-run a drift causes starts it again.
	_, err = Clock{}.Run(ctx, rc, ClockIn{Every: "1"})
	require.NoError(t, err)
	drift, err = Clock{}.Check(ctx, rc, ClockIn{Every: "1"}, out)
	require.NoError(t, err)
	require.Empty(t, drift)
}
