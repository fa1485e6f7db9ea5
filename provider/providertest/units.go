package providertest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

// RunUnits is the contract suite of the [provider.Units] capability. It
// runs the same checks against any node whose transport offers units — a
// lab node under the lab's supervisor, a machine or container under a
// real systemd — so both are held to one behaviour: install starts, a
// killed process is restarted per policy, logs are kept, a changed
// definition restarts exactly once, an unchanged one not at all, stop,
// start, restart, requirements, failures and removal. node must be ready;
// the suite removes the units it installs.
func RunUnits(t *testing.T, node *provider.Node) {
	units, err := provider.UnitsOf(node)
	require.NoError(t, err)
	h := &unitHarness{node: node, units: units}
	tests := []struct {
		name string
		fn   func(t *testing.T, h *unitHarness)
	}{
		{"Lifecycle", testUnitLifecycle},
		{"FailuresAndPolicies", testUnitFailures},
		{"StartLimit", testUnitStartLimit},
		{"Requires", testUnitRequires},
		{"ArgumentsAndEnvironmentArriveUnchanged", testUnitArguments},
		{"BadDefinitions", testUnitBadDefinitions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

type unitHarness struct {
	node  *provider.Node
	units provider.Units
}

// unit returns a unit with a name unique to this run whose program logs a
// line at each start and then sleeps; the test removes it at the end.
func (h *unitHarness) unit(t *testing.T, prefix, version string) provider.Unit {
	t.Helper()
	name := fmt.Sprintf("mason-%s-%d", prefix, time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.units.RemoveUnit(ctx, name); err != nil {
			t.Errorf("remove unit %s: %v", name, err)
		}
	})
	return provider.Unit{
		Name:         name,
		Description:  "mason contract test unit " + prefix,
		Command:      []string{"/bin/sh", "-c", `echo "started $MASON_VERSION in $(pwd)"; exec sleep 100000`},
		Env:          []string{"MASON_VERSION=" + version},
		Dir:          "/tmp",
		RestartDelay: 200 * time.Millisecond,
		StopTimeout:  5 * time.Second,
	}
}

func (h *unitHarness) status(t *testing.T, ctx context.Context, name string) provider.UnitStatus {
	t.Helper()
	st, err := h.units.UnitStatus(ctx, name)
	require.NoError(t, err)
	require.Equal(t, name, st.Name)
	return st
}

// eventually waits until the unit's status satisfies ok and returns it.
func (h *unitHarness) eventually(t *testing.T, ctx context.Context, name, what string, ok func(provider.UnitStatus) bool) provider.UnitStatus {
	t.Helper()
	var st provider.UnitStatus
	var err error
	require.Eventually(t, func() bool {
		st, err = h.units.UnitStatus(ctx, name)
		return err == nil && ok(st)
	}, 30*time.Second, 50*time.Millisecond, "unit %s never became %s; last status: %s (%v)", name, what, &st, err)
	return st
}

// starts counts the program's "started VERSION" lines in the unit's logs,
// waiting until there are want of them (logs may lag behind the process),
// and then checks there are not more.
func (h *unitHarness) starts(t *testing.T, ctx context.Context, name, version string, want int) {
	t.Helper()
	logs, re := h.startsAtLeast(t, ctx, name, version, want)
	require.Len(t, re.FindAllString(logs, -1), want, "unit %s: exactly %d starts of %s; logs:\n%s", name, want, version, logs)
}

// startsAtLeast waits until the unit's logs show want starts of version.
func (h *unitHarness) startsAtLeast(t *testing.T, ctx context.Context, name, version string, want int) (string, *regexp.Regexp) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^started ` + regexp.QuoteMeta(version) + ` in /tmp$`)
	var logs string
	var err error
	require.Eventually(t, func() bool {
		logs, err = h.units.UnitLogs(ctx, name, 0)
		return err == nil && len(re.FindAllString(logs, -1)) >= want
	}, 30*time.Second, 50*time.Millisecond, "unit %s: want %d starts of %s in the logs (%v):\n%s", name, want, version, err, logs)
	return logs, re
}

func (h *unitHarness) run(t *testing.T, ctx context.Context, script string, args ...string) provider.Result {
	t.Helper()
	res, err := h.node.Transport.Run(ctx, provider.Command{Args: append([]string{"sh", "-c", script, "sh"}, args...), Timeout: time.Minute})
	require.NoError(t, err)
	return res
}

// alive reports whether pid runs on the node (and is not a zombie).
func (h *unitHarness) alive(t *testing.T, ctx context.Context, pid int) bool {
	t.Helper()
	res := h.run(t, ctx, `s=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' /proc/$1/status 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]`, fmt.Sprint(pid))
	return res.ExitCode == 0
}

func testUnitLifecycle(t *testing.T, h *unitHarness) {
	ctx := ctxT(t)
	u := h.unit(t, "life", "v1")

	st := h.status(t, ctx, u.Name)
	require.Equal(t, provider.UnitNotInstalled, st.State)
	require.ErrorIs(t, h.units.StartUnit(ctx, u.Name), provider.ErrUnitNotFound)

	// Install starts it.
	change, err := h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	require.Equal(t, provider.UnitCreated, change)
	st = h.eventually(t, ctx, u.Name, "running", provider.UnitStatus.Running)
	require.Positive(t, st.MainPID)
	require.True(t, h.alive(t, ctx, st.MainPID))
	require.Zero(t, st.Restarts)
	h.starts(t, ctx, u.Name, "v1", 1)

	// What is installed is the systemd unit file an operator would write.
	file, err := h.node.Transport.Get(ctx, "/etc/systemd/system/"+u.FileName())
	require.NoError(t, err)
	require.Equal(t, string(u.SystemdFile()), string(file))

	// Killed, it is restarted per policy (on-failure by default).
	first := st.MainPID
	require.Equal(t, 0, h.run(t, ctx, `kill -9 "$1"`, fmt.Sprint(first)).ExitCode)
	st = h.eventually(t, ctx, u.Name, "restarted", func(s provider.UnitStatus) bool { return s.Running() && s.MainPID != first })
	require.Equal(t, 1, st.Restarts, "one automatic restart")
	h.starts(t, ctx, u.Name, "v1", 2)

	// Unchanged: nothing happens.
	second := st.MainPID
	change, err = h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	require.Equal(t, provider.UnitUnchanged, change)
	require.Equal(t, second, h.status(t, ctx, u.Name).MainPID)

	// Changed: exactly one restart, with the new definition.
	u.Env = []string{"MASON_VERSION=v2"}
	change, err = h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	require.Equal(t, provider.UnitUpdated, change)
	st = h.eventually(t, ctx, u.Name, "running v2", provider.UnitStatus.Running)
	require.NotEqual(t, second, st.MainPID)
	require.False(t, h.alive(t, ctx, second), "the old process is gone")
	h.starts(t, ctx, u.Name, "v2", 1)
	file, err = h.node.Transport.Get(ctx, "/etc/systemd/system/"+u.FileName())
	require.NoError(t, err)
	require.Contains(t, string(file), "Environment=MASON_VERSION=v2")

	// Installing the new definition again restarts nothing.
	third := st.MainPID
	change, err = h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	require.Equal(t, provider.UnitUnchanged, change)
	require.Equal(t, third, h.status(t, ctx, u.Name).MainPID)
	h.starts(t, ctx, u.Name, "v2", 1)
	h.starts(t, ctx, u.Name, "v1", 2)

	// Logs: the last lines, oldest first.
	last, err := h.units.UnitLogs(ctx, u.Name, 1)
	require.NoError(t, err)
	require.Equal(t, "started v2 in /tmp", strings.TrimSpace(last))

	// Stop: not running, not restarted, still installed.
	require.NoError(t, h.units.StopUnit(ctx, u.Name))
	st = h.status(t, ctx, u.Name)
	require.Equal(t, provider.UnitStopped, st.State, "status %s", &st)
	require.Zero(t, st.MainPID)
	require.False(t, h.alive(t, ctx, third), "stop ended the process")
	time.Sleep(3 * u.RestartDelay)
	require.Equal(t, provider.UnitStopped, h.status(t, ctx, u.Name).State, "a stopped unit is not restarted")
	require.NoError(t, h.units.StopUnit(ctx, u.Name), "stopping a stopped unit succeeds")

	// Start, then restart.
	require.NoError(t, h.units.StartUnit(ctx, u.Name))
	st = h.eventually(t, ctx, u.Name, "running", provider.UnitStatus.Running)
	require.Zero(t, st.Restarts, "a start on request counts no restart")
	h.starts(t, ctx, u.Name, "v2", 2)
	require.NoError(t, h.units.StartUnit(ctx, u.Name), "starting a running unit does nothing")
	require.Equal(t, st.MainPID, h.status(t, ctx, u.Name).MainPID)
	require.NoError(t, h.units.RestartUnit(ctx, u.Name))
	st2 := h.eventually(t, ctx, u.Name, "running", provider.UnitStatus.Running)
	require.NotEqual(t, st.MainPID, st2.MainPID)
	h.starts(t, ctx, u.Name, "v2", 3)

	// A unit that is not running is started by an unchanged install.
	require.NoError(t, h.units.StopUnit(ctx, u.Name))
	change, err = h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	require.Equal(t, provider.UnitStarted, change)
	st = h.eventually(t, ctx, u.Name, "running", provider.UnitStatus.Running)

	// Remove: stopped and gone; removing again succeeds.
	require.NoError(t, h.units.RemoveUnit(ctx, u.Name))
	require.Equal(t, provider.UnitNotInstalled, h.status(t, ctx, u.Name).State)
	require.False(t, h.alive(t, ctx, st.MainPID), "remove ended the process")
	_, err = h.node.Transport.Get(ctx, "/etc/systemd/system/"+u.FileName())
	require.Error(t, err, "the unit file is gone")
	require.NoError(t, h.units.RemoveUnit(ctx, u.Name))
	require.NoError(t, h.units.StopUnit(ctx, u.Name))
	require.ErrorIs(t, h.units.RestartUnit(ctx, u.Name), provider.ErrUnitNotFound)
}

func testUnitFailures(t *testing.T, h *unitHarness) {
	ctx := ctxT(t)

	// RestartNever: a failure is reported with its exit status and stays.
	u := h.unit(t, "never", "v1")
	u.Restart = provider.RestartNever
	u.Command = []string{"/bin/sh", "-c", `echo "started $MASON_VERSION in $(pwd)"; sleep 0.3; exit 3`}
	_, err := h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	st := h.eventually(t, ctx, u.Name, "failed", func(s provider.UnitStatus) bool { return s.State == provider.UnitFailed })
	require.True(t, st.Exited)
	require.Equal(t, 3, st.ExitCode)
	require.Zero(t, st.Restarts)
	require.Contains(t, st.String(), "exit status 3")
	h.starts(t, ctx, u.Name, "v1", 1)

	// A clean exit under on-failure is not restarted and is not a failure.
	clean := h.unit(t, "clean", "v1")
	clean.Command = []string{"/bin/sh", "-c", `echo "started $MASON_VERSION in $(pwd)"; sleep 0.3; exit 0`}
	_, err = h.units.InstallUnit(ctx, clean)
	require.NoError(t, err)
	st = h.eventually(t, ctx, clean.Name, "stopped", func(s provider.UnitStatus) bool { return s.State == provider.UnitStopped })
	require.True(t, st.Exited)
	require.Zero(t, st.ExitCode)
	time.Sleep(3 * clean.RestartDelay)
	h.starts(t, ctx, clean.Name, "v1", 1)

	// RestartAlways restarts a clean exit too.
	always := h.unit(t, "always", "v1")
	always.Restart = provider.RestartAlways
	always.RestartDelay = 500 * time.Millisecond
	always.Command = []string{"/bin/sh", "-c", `echo "started $MASON_VERSION in $(pwd)"; sleep 0.5; exit 0`}
	_, err = h.units.InstallUnit(ctx, always)
	require.NoError(t, err)
	h.startsAtLeast(t, ctx, always.Name, "v1", 2)
	require.NoError(t, h.units.StopUnit(ctx, always.Name))

	// A program that is not on the node is refused at install.
	missing := h.unit(t, "missing", "v1")
	missing.Command = []string{"/nonexistent/mason-daemon", "--flag"}
	_, err = h.units.InstallUnit(ctx, missing)
	require.Error(t, err)
	require.Contains(t, err.Error(), "/nonexistent/mason-daemon")
	require.Contains(t, err.Error(), "not an executable file")
}

func testUnitStartLimit(t *testing.T, h *unitHarness) {
	ctx := ctxT(t)
	u := h.unit(t, "crashloop", "v1")
	u.RestartDelay = 100 * time.Millisecond
	u.Command = []string{"/bin/sh", "-c", `echo "started $MASON_VERSION in $(pwd)"; exit 1`}
	_, err := h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	st := h.eventually(t, ctx, u.Name, "failed", func(s provider.UnitStatus) bool { return s.State == provider.UnitFailed })
	require.Equal(t, 1, st.ExitCode)
	// Five starts within ten seconds, then no more.
	h.starts(t, ctx, u.Name, "v1", provider.StartLimitBurst)
	time.Sleep(500 * time.Millisecond)
	h.starts(t, ctx, u.Name, "v1", provider.StartLimitBurst)
}

func testUnitRequires(t *testing.T, h *unitHarness) {
	ctx := ctxT(t)
	base := h.unit(t, "base", "v1")
	_, err := h.units.InstallUnit(ctx, base)
	require.NoError(t, err)
	require.NoError(t, h.units.StopUnit(ctx, base.Name))

	top := h.unit(t, "top", "v1")
	top.Requires = []string{base.Name}
	_, err = h.units.InstallUnit(ctx, top)
	require.NoError(t, err)
	h.eventually(t, ctx, top.Name, "running", provider.UnitStatus.Running)
	h.eventually(t, ctx, base.Name, "running", provider.UnitStatus.Running)

	// Stopping a required unit stops the units that require it.
	require.NoError(t, h.units.StopUnit(ctx, base.Name))
	h.eventually(t, ctx, top.Name, "stopped", func(s provider.UnitStatus) bool { return s.State == provider.UnitStopped })

	// Restarting it restarts them too.
	require.NoError(t, h.units.StartUnit(ctx, top.Name))
	topPID := h.eventually(t, ctx, top.Name, "running", provider.UnitStatus.Running).MainPID
	require.NoError(t, h.units.RestartUnit(ctx, base.Name))
	h.eventually(t, ctx, top.Name, "restarted", func(s provider.UnitStatus) bool { return s.Running() && s.MainPID != topPID })
}

func testUnitBadDefinitions(t *testing.T, h *unitHarness) {
	ctx := ctxT(t)
	for name, u := range map[string]provider.Unit{
		"no command":        {Name: "mason-bad"},
		"relative program":  {Name: "mason-bad", Command: []string{"sleep", "1"}},
		"bad name":          {Name: "../etc/passwd", Command: []string{"/bin/true"}},
		"newline in an arg": {Name: "mason-bad", Command: []string{"/bin/echo", "a\n[Service]"}},
		"bad env":           {Name: "mason-bad", Command: []string{"/bin/true"}, Env: []string{"NOEQUALS"}},
	} {
		_, err := h.units.InstallUnit(ctx, u)
		require.Error(t, err, name)
	}
	_, err := h.units.UnitStatus(ctx, "../x")
	require.Error(t, err)
}

func testUnitArguments(t *testing.T, h *unitHarness) {
	ctx := ctxT(t)
	odd := []string{"a b", "$HOME", "${PATH}", "50%", "%n", `"q"`, "it's", `back\slash`, ";", "", "x;y"}
	u := h.unit(t, "args", "v1")
	u.Restart = provider.RestartNever
	u.Command = append([]string{"/bin/sh", "-c", `printf '[%s]\n' "$@"; printf '<%s>\n' "$ODD"; echo "nofile=$(ulimit -n)"`, "sh"}, odd...)
	u.LimitNOFILE = 1000
	u.Env = []string{"ODD=" + `a b $HOME %n "q" it's back\slash ;`}
	_, err := h.units.InstallUnit(ctx, u)
	require.NoError(t, err)
	h.eventually(t, ctx, u.Name, "stopped", func(s provider.UnitStatus) bool { return s.State == provider.UnitStopped })
	var want strings.Builder
	for _, a := range u.Command[4:] {
		want.WriteString("[" + a + "]\n")
	}
	want.WriteString("<" + strings.TrimPrefix(u.Env[0], "ODD=") + ">\n")
	want.WriteString("nofile=1000\n")
	var logs string
	require.Eventually(t, func() bool {
		logs, err = h.units.UnitLogs(ctx, u.Name, 0)
		return err == nil && strings.Count(logs, "\n") >= len(u.Command)-2
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, want.String(), logs)
}
