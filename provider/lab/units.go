package lab

import (
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/internal/shfile"
	"github.com/masonops/mason/provider/internal/unitop"
	"github.com/masonops/mason/provider/systemd"
)

// supervisorScript is the lab's supervisor of units, run by the node's
// own shell; see supervisor.sh for how it keeps its state.
//
//go:embed supervisor.sh
var supervisorScript string

// Where lab nodes without systemd keep units.
const (
	// UnitDir holds each unit's definition (UnitDir/NAME: the systemd
	// file, the start script, the restart policy) and the supervisor
	// (UnitDir/mason-unit). The systemd file is also installed as
	// /etc/systemd/system/NAME.service, as on a real machine.
	UnitDir = "/var/lib/mason/units"
	// UnitLogDir holds each unit's output, UnitLogDir/NAME.log (the
	// previous 16 MiB in NAME.log.1).
	UnitLogDir = "/var/log/units"
	// unitStateDir holds each unit's status and its supervisor's lock.
	unitStateDir = "/run/mason/units"
)

var _ provider.Units = (*Transport)(nil)

// InstallUnit implements [provider.Units]. In an ImageSystemd node the
// node's systemd runs the unit (see package systemd). In other nodes the
// lab's supervisor runs it: a process of the node (it lives as long
// as the node, whatever happens to the controller) that starts the
// program in its own process group with its output appended to
// UnitLogDir/NAME.log, restarts it per the unit's policy, and on stop
// sends SIGTERM to the group, then SIGKILL after the stop timeout.
func (t *Transport) InstallUnit(ctx context.Context, u provider.Unit) (provider.UnitChange, error) {
	if t.systemd {
		return systemd.New(t).InstallUnit(ctx, u)
	}
	if err := u.Validate(); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	out, err := t.unitOp(ctx, "install", u.Name, provider.Command{
		Args:  []string{"sh", "-s", "--", u.Name},
		Stdin: strings.NewReader(installScript(u)),
	})
	if err != nil {
		return "", err
	}
	lines := strings.Fields(out)
	if len(lines) == 0 {
		return "", fmt.Errorf("lab: install unit %s: the supervisor said nothing", u.Name)
	}
	switch c := provider.UnitChange(lines[len(lines)-1]); c {
	case provider.UnitCreated, provider.UnitUpdated, provider.UnitStarted, provider.UnitUnchanged:
		return c, nil
	}
	return "", fmt.Errorf("lab: install unit %s: unexpected answer %q", u.Name, out)
}

// StartUnit implements [provider.Units].
func (t *Transport) StartUnit(ctx context.Context, name string) error {
	if t.systemd {
		return systemd.New(t).StartUnit(ctx, name)
	}
	_, err := t.supervisorOp(ctx, "start", name)
	return err
}

// StopUnit implements [provider.Units].
func (t *Transport) StopUnit(ctx context.Context, name string) error {
	if t.systemd {
		return systemd.New(t).StopUnit(ctx, name)
	}
	_, err := t.supervisorOp(ctx, "stop", name)
	return err
}

// RestartUnit implements [provider.Units].
func (t *Transport) RestartUnit(ctx context.Context, name string) error {
	if t.systemd {
		return systemd.New(t).RestartUnit(ctx, name)
	}
	_, err := t.supervisorOp(ctx, "restart", name)
	return err
}

// RemoveUnit implements [provider.Units].
func (t *Transport) RemoveUnit(ctx context.Context, name string) error {
	if t.systemd {
		return systemd.New(t).RemoveUnit(ctx, name)
	}
	_, err := t.supervisorOp(ctx, "remove", name)
	return err
}

// UnitLogs implements [provider.Units]: the end of UnitLogDir/NAME.log.
func (t *Transport) UnitLogs(ctx context.Context, name string, lines int) (string, error) {
	if t.systemd {
		return systemd.New(t).UnitLogs(ctx, name, lines)
	}
	return t.supervisorOp(ctx, "logs", name, strconv.Itoa(max(lines, 0)))
}

// UnitStatus implements [provider.Units].
func (t *Transport) UnitStatus(ctx context.Context, name string) (provider.UnitStatus, error) {
	if t.systemd {
		return systemd.New(t).UnitStatus(ctx, name)
	}
	out, err := t.supervisorOp(ctx, "status", name)
	if err != nil {
		return provider.UnitStatus{}, err
	}
	return parseStatus(name, out)
}

// parseStatus reads the supervisor's key=value status.
func parseStatus(name, out string) (provider.UnitStatus, error) {
	st := provider.UnitStatus{Name: name}
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			kv[k] = v
		}
	}
	st.State = provider.UnitState(kv["state"])
	switch st.State {
	case provider.UnitNotInstalled, provider.UnitStopped, provider.UnitRunning, provider.UnitRestarting,
		provider.UnitFailed, provider.UnitStarting, provider.UnitStopping:
	default:
		return st, fmt.Errorf("lab: status of unit %s: unexpected answer %q", name, out)
	}
	num := func(k string) int { n, _ := strconv.Atoi(kv[k]); return n }
	st.MainPID = num("pid")
	st.Exited = kv["exited"] == "1"
	st.ExitCode = num("exit")
	st.Restarts = num("restarts")
	if s := num("since"); s > 0 {
		st.Since = time.Unix(int64(s), 0)
	}
	if kv["supervised"] == "0" && st.State != provider.UnitStopped && st.State != provider.UnitFailed {
		// The supervisor was killed: nothing restarts the program now.
		if kv["alive"] == "1" {
			st.State = provider.UnitRunning
		} else {
			st.State, st.MainPID = provider.UnitFailed, 0
		}
	}
	if st.State == provider.UnitRunning {
		// As with systemd, the exit of an earlier process is not kept
		// once a new one runs (Restarts counts them).
		st.Exited, st.ExitCode = false, 0
	} else {
		st.MainPID = 0
	}
	return st, nil
}

// supervisorOp runs one operation of the node's supervisor script.
func (t *Transport) supervisorOp(ctx context.Context, op, name string, args ...string) (string, error) {
	if err := provider.ValidUnitName(name); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	argv := append([]string{"sh", "-c", supervisorScript, "mason-unit", op, name}, args...)
	return t.unitOp(ctx, op, name, provider.Command{Args: argv})
}

// unitOp runs cmd and turns the supervisor's exit statuses into errors.
func (t *Transport) unitOp(ctx context.Context, op, name string, cmd provider.Command) (string, error) {
	res, err := t.Run(ctx, cmd)
	return unitop.Outcome("lab", op, name, res, err)
}

// installScript is the shell script InstallUnit feeds to the node's shell:
// it writes the supervisor and the unit's files to a new directory, checks
// the program, and lets the supervisor commit them (compare, replace,
// start or restart).
func installScript(u provider.Unit) string {
	var b strings.Builder
	file := func(name string, data []byte) {
		fmt.Fprintf(&b, "base64 -d >\"$tmp/%s\" <<'__MASON_EOF__'\n%s\n__MASON_EOF__\n", name, wrap(base64.StdEncoding.EncodeToString(data)))
	}
	fmt.Fprintf(&b, "set -eu\numask 022\nmkdir -p %s\ntmp=$(mktemp -d %s/.new.XXXXXX)\ntrap 'rm -rf \"$tmp\"' EXIT\n", UnitDir, UnitDir)
	file("lib", []byte(supervisorScript))
	fmt.Fprintf(&b, "cmp -s \"$tmp/lib\" %[1]s/mason-unit || mv -f \"$tmp/lib\" %[1]s/mason-unit\nrm -f \"$tmp/lib\"\n", UnitDir)
	file("unit", u.SystemdFile())
	file("run", []byte(runScript(u)))
	file("conf", []byte(unitConf(u)))
	fmt.Fprintf(&b, "chmod 0700 \"$tmp/run\"\n")
	b.WriteString(unitop.CheckProgram(u))
	fmt.Fprintf(&b, "trap - EXIT\nexec sh %s/mason-unit commit %s \"$tmp\"\n", UnitDir, shfile.Quote(u.Name))
	return b.String()
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// defaultPath is the PATH systemd gives services, and so does the lab.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// runScript starts the unit's program the way systemd would: in its
// working directory, with only PATH and the unit's environment.
func runScript(u provider.Unit) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# Starts unit %s for the lab's supervisor; written by mason from %s.\n", u.Name, u.FileName())
	dir := u.Dir
	if dir == "" {
		dir = "/"
	}
	fmt.Fprintf(&b, "cd %s || exit 200\n", shfile.Quote(dir))
	if u.LimitNOFILE > 0 {
		// Raising the hard limit needs CAP_SYS_RESOURCE, which some hosts
		// (containers, microVMs) do not give: then the node's hard limit
		// is the most the program gets, and its log says so.
		fmt.Fprintf(&b, "ulimit -n %[1]d 2>/dev/null || { hard=$(ulimit -H -n); echo \"mason-unit: LimitNOFILE=%[1]d is above this node's hard limit $hard (raising it needs CAP_SYS_RESOURCE); using $hard\" >&2; ulimit -S -n \"$hard\" || exit 201; }\n", u.LimitNOFILE)
	}
	b.WriteString("exec env -i " + shfile.Quote(defaultPath))
	for _, e := range u.Env {
		b.WriteString(" " + shfile.Quote(e))
	}
	for _, a := range u.Command {
		b.WriteString(" " + shfile.Quote(a))
	}
	b.WriteString("\n")
	return b.String()
}

// unitConf is the policy the supervisor reads. Only services are started
// as requirements: targets and other unit kinds mean nothing in a lab node.
func unitConf(u provider.Unit) string {
	var req []string
	for _, r := range u.Requires {
		if name, ok := strings.CutSuffix(r, ".service"); ok {
			req = append(req, name)
		} else if !strings.Contains(r, ".") {
			req = append(req, r)
		}
	}
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	return fmt.Sprintf("restart=%s\ndelay=%s\nstop_timeout=%s\nburst=%d\ninterval=%d\nrequires=%s\n",
		u.Policy(), secs(u.Delay()), secs(u.StopWait()), provider.StartLimitBurst, int(provider.StartLimitInterval/time.Second),
		shfile.Quote(strings.Join(req, " ")))
}
