package provider

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Unit describes a long-running program on a node — etcd, dockerd,
// containerd, a kubelet — in the terms of a systemd service unit, so that
// what a role installs on a real machine is the file an operator would
// write by hand ([Unit.SystemdFile]), and the lab's supervisor runs the
// same definition in nodes without systemd.
//
// The program runs in the foreground as the unit's main process (systemd's
// Type=simple): it must not fork into the background itself. Its standard
// output and error are its log ([Units.UnitLogs]).
type Unit struct {
	// Name identifies the unit on its node: 1 to 100 characters of a-z,
	// A-Z, 0-9, '_', '.' and '-', without the ".service" suffix ("etcd",
	// "kube-apiserver").
	Name string
	// Description is one line for people (systemd's Description=).
	Description string
	// Documentation is a URL for people (systemd's Documentation=).
	Documentation string

	// Command is the program, as an absolute path, and its arguments. It is
	// executed directly, never through a shell.
	Command []string
	// Env holds environment variables as KEY=VALUE, on top of a PATH of the
	// usual system directories. Values are written into the unit's
	// definition, which every user of the node can read: pass secrets in
	// files of mode 0600 that the program reads, not here.
	Env []string
	// Dir is the working directory; empty means /.
	Dir string

	// Restart says when the main process is started again after it ended
	// without being stopped; empty means [RestartOnFailure].
	Restart RestartPolicy
	// RestartDelay is the wait before such a restart (RestartSec=); zero
	// means one second. Like systemd, a unit started more than five times
	// within ten seconds stops being restarted and is failed.
	RestartDelay time.Duration
	// StopTimeout is how long a stop waits after SIGTERM before it sends
	// SIGKILL (TimeoutStopSec=); zero means 90 seconds, systemd's default.
	StopTimeout time.Duration
	// LimitNOFILE, when positive, is the open-file limit of the program.
	LimitNOFILE int

	// Requires names units that must run for this one to run: starting
	// this unit starts them first (Requires= and After=). Names without a
	// suffix are services ("containerd"); others are kept ("network-online.target").
	Requires []string
	// After names units this one starts after, when both start (After=).
	After []string

	// Systemd holds extra Key=Value lines for the [Service] section, for
	// settings that only systemd can honour ("Delegate=yes",
	// "KillMode=process", "OOMScoreAdjust=-999"). The lab's supervisor
	// ignores them: prefer the fields above, which both honour.
	Systemd []string
}

// RestartPolicy says when a unit's process is started again after it
// ended by itself. The names are systemd's Restart= values.
type RestartPolicy string

// Restart policies.
const (
	// RestartOnFailure restarts after a non-zero exit status or a death by
	// signal other than SIGHUP, SIGINT, SIGTERM and SIGPIPE.
	RestartOnFailure RestartPolicy = "on-failure"
	// RestartAlways restarts whatever the exit status.
	RestartAlways RestartPolicy = "always"
	// RestartNever leaves the unit stopped (or failed) after its process
	// ended; the next plan's drift check is what repairs it.
	RestartNever RestartPolicy = "no"
)

// Defaults of the optional Unit fields, the same wherever the unit runs.
const (
	DefaultRestartDelay = time.Second
	DefaultStopTimeout  = 90 * time.Second
	// StartLimitBurst starts within StartLimitInterval make a unit failed
	// instead of being restarted again (systemd's defaults).
	StartLimitBurst    = 5
	StartLimitInterval = 10 * time.Second
)

var (
	unitNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,99}$`)
	envKeyPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	unitRefPattern  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.@:-]{0,250}$`)
	systemdKey      = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*=`)
)

// Policy returns the restart policy with the default applied.
func (u Unit) Policy() RestartPolicy {
	if u.Restart == "" {
		return RestartOnFailure
	}
	return u.Restart
}

// Delay returns RestartDelay with the default applied.
func (u Unit) Delay() time.Duration {
	if u.RestartDelay <= 0 {
		return DefaultRestartDelay
	}
	return u.RestartDelay
}

// StopWait returns StopTimeout with the default applied.
func (u Unit) StopWait() time.Duration {
	if u.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return u.StopTimeout
}

// FileName returns the name of the unit's file ("etcd.service").
func (u Unit) FileName() string { return u.Name + ".service" }

// Validate checks the definition and says which field is wrong.
func (u Unit) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("unit %q: %s: %s", u.Name, field, fmt.Sprintf(format, args...))
	}
	if err := ValidUnitName(u.Name); err != nil {
		return err
	}
	for field, s := range map[string]string{"Description": u.Description, "Documentation": u.Documentation, "Dir": u.Dir} {
		if hasControl(s) {
			return bad(field, "%q contains a control character", s)
		}
	}
	if len(u.Command) == 0 || u.Command[0] == "" {
		return bad("Command", "empty: name the program and its arguments")
	}
	if !path.IsAbs(u.Command[0]) || path.Clean(u.Command[0]) != u.Command[0] {
		return bad("Command", "the program %q must be a clean absolute path (\"/usr/bin/etcd\")", u.Command[0])
	}
	for i, a := range u.Command {
		if hasControl(a) {
			return bad("Command", "argument %d (%q) contains a control character", i, a)
		}
	}
	for _, e := range u.Env {
		k, v, ok := strings.Cut(e, "=")
		if !ok || !envKeyPattern.MatchString(k) {
			return bad("Env", "%q is not KEY=VALUE with KEY of letters, digits and '_'", e)
		}
		if hasControl(v) {
			return bad("Env", "the value of %s contains a control character", k)
		}
	}
	if u.Dir != "" && (!path.IsAbs(u.Dir) || path.Clean(u.Dir) != u.Dir) {
		return bad("Dir", "%q must be a clean absolute path", u.Dir)
	}
	switch u.Restart {
	case "", RestartOnFailure, RestartAlways, RestartNever:
	default:
		return bad("Restart", "%q is not one of %q, %q, %q", u.Restart, RestartOnFailure, RestartAlways, RestartNever)
	}
	if u.RestartDelay < 0 || u.StopTimeout < 0 || u.LimitNOFILE < 0 {
		return bad("RestartDelay/StopTimeout/LimitNOFILE", "must not be negative")
	}
	for _, list := range [][]string{u.Requires, u.After} {
		for _, r := range list {
			if !unitRefPattern.MatchString(r) {
				return bad("Requires/After", "%q is not a unit name", r)
			}
			if unitRef(r) == u.FileName() {
				return bad("Requires/After", "the unit names itself")
			}
		}
	}
	for _, s := range u.Systemd {
		if !systemdKey.MatchString(s) || hasControl(s) {
			return bad("Systemd", "%q is not one Key=Value line", s)
		}
	}
	return nil
}

// ValidUnitName reports whether name can name a unit.
func ValidUnitName(name string) error {
	if !unitNamePattern.MatchString(name) || strings.HasSuffix(name, ".service") {
		return fmt.Errorf("unit name %q is invalid: use 1-100 characters of a-z, A-Z, 0-9, '_', '.' and '-', without \".service\"", name)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// unitRef turns a dependency name into a unit file name.
func unitRef(s string) string {
	if strings.Contains(s, ".") {
		return s
	}
	return s + ".service"
}

// SystemdFile renders the definition as a systemd service unit, the file
// installed as /etc/systemd/system/NAME.service: the file an operator
// would write by hand. Defaults are written out, so the file says exactly
// how the unit behaves. The unit must be valid.
func (u Unit) SystemdFile() []byte {
	var b strings.Builder
	b.WriteString("# Installed by mason; changes here are overwritten.\n[Unit]\n")
	desc := u.Description
	if desc == "" {
		desc = u.Name
	}
	b.WriteString("Description=" + escapeSpecifiers(desc) + "\n")
	if u.Documentation != "" {
		b.WriteString("Documentation=" + escapeSpecifiers(u.Documentation) + "\n")
	}
	var after []string
	for _, r := range append(append([]string(nil), u.Requires...), u.After...) {
		if r := unitRef(r); !contains(after, r) {
			after = append(after, r)
		}
	}
	if len(u.Requires) > 0 {
		var req []string
		for _, r := range u.Requires {
			req = append(req, unitRef(r))
		}
		b.WriteString("Requires=" + strings.Join(req, " ") + "\n")
	}
	if len(after) > 0 {
		b.WriteString("After=" + strings.Join(after, " ") + "\n")
	}
	b.WriteString("\n[Service]\n")
	for _, e := range u.Env {
		b.WriteString("Environment=" + quoteEnv(e) + "\n")
	}
	if u.Dir != "" {
		b.WriteString("WorkingDirectory=" + escapeSpecifiers(u.Dir) + "\n")
	}
	b.WriteString("ExecStart=" + execLine(u.Command) + "\n")
	b.WriteString("Restart=" + string(u.Policy()) + "\n")
	b.WriteString("RestartSec=" + systemdDuration(u.Delay()) + "\n")
	b.WriteString("TimeoutStopSec=" + systemdDuration(u.StopWait()) + "\n")
	if u.LimitNOFILE > 0 {
		b.WriteString("LimitNOFILE=" + strconv.Itoa(u.LimitNOFILE) + "\n")
	}
	for _, s := range u.Systemd {
		b.WriteString(s + "\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return []byte(b.String())
}

// execLine renders a command for ExecStart=, breaking long lines before
// each flag the way hand-written units do.
func execLine(args []string) string {
	quoted := make([]string, len(args))
	total := 0
	for i, a := range args {
		quoted[i] = quoteExecArg(a)
		total += len(quoted[i]) + 1
	}
	if total <= 80 {
		return strings.Join(quoted, " ")
	}
	var b strings.Builder
	b.WriteString(quoted[0])
	for i, q := range quoted[1:] {
		if strings.HasPrefix(args[i+1], "-") {
			b.WriteString(" \\\n  ")
		} else {
			b.WriteString(" ")
		}
		b.WriteString(q)
	}
	return b.String()
}

// quoteExecArg quotes one word for systemd's command-line and Environment=
// syntax: '%' starts a specifier and '$' a variable, so both are doubled;
// words with spaces, quotes, backslashes or ';' are double-quoted.
func quoteExecArg(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// quoteEnv quotes one KEY=VALUE for Environment=, where '%' starts a
// specifier but '$' is not special.
func quoteEnv(s string) string {
	s = escapeSpecifiers(s)
	if !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// systemdDuration renders d as systemd reads it: whole seconds as a bare
// number, anything else in milliseconds.
func systemdDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatInt(int64((d+time.Millisecond/2)/time.Millisecond), 10) + "ms"
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Units is the optional capability of a node's [Transport] to run units:
// long-running programs, installed, supervised and restarted per their
// definition. Discover it like database/sql/driver's optional interfaces,
// with [UnitsOf] (or a type assertion on Node.Transport).
//
// On machines with systemd (ssh and vSphere nodes, lab nodes booted with
// systemd) a unit is /etc/systemd/system/NAME.service, started with
// systemctl and logged by journald; in plain lab nodes the lab's
// supervisor runs the same definition. Roles are identical on both.
//
// Operations on a unit that is not installed return an error wrapping
// [ErrUnitNotFound], except StopUnit and RemoveUnit, which succeed.
type Units interface {
	// InstallUnit installs or updates the unit, enables it (it starts
	// again when the node does) and makes sure it runs: a new unit is
	// started; a changed definition restarts a running unit exactly once;
	// an unchanged definition leaves a running unit alone and starts one
	// that is not running. The result says which happened.
	InstallUnit(ctx context.Context, u Unit) (UnitChange, error)
	// StartUnit starts the unit (and the units it requires) unless it runs.
	StartUnit(ctx context.Context, name string) error
	// StopUnit stops the unit: SIGTERM to its processes, SIGKILL after its
	// StopTimeout. It stays installed and is not restarted.
	StopUnit(ctx context.Context, name string) error
	// RestartUnit stops the unit if it runs and starts it.
	RestartUnit(ctx context.Context, name string) error
	// UnitStatus reports the unit's state. A unit that is not installed
	// has State UnitNotInstalled and no error.
	UnitStatus(ctx context.Context, name string) (UnitStatus, error)
	// UnitLogs returns up to the last lines lines of the unit's output
	// (all of it kept when lines <= 0), oldest first.
	UnitLogs(ctx context.Context, name string, lines int) (string, error)
	// RemoveUnit stops the unit and removes its definition. Its logs stay
	// on the node.
	RemoveUnit(ctx context.Context, name string) error
}

// ErrUnitNotFound is wrapped by errors about units that are not installed.
var ErrUnitNotFound = errors.New("unit not installed")

// UnitChange says what InstallUnit did.
type UnitChange string

// What InstallUnit did.
const (
	UnitCreated   UnitChange = "created"   // new; started
	UnitUpdated   UnitChange = "updated"   // definition changed; restarted once (or started)
	UnitStarted   UnitChange = "started"   // definition unchanged; it was not running and was started
	UnitUnchanged UnitChange = "unchanged" // definition unchanged and running: nothing done
)

// UnitState is a unit's state as its supervisor (systemd or the lab's)
// reports it.
type UnitState string

// Unit states.
const (
	UnitNotInstalled UnitState = "not-installed"
	// UnitStopped: installed and not running: never started, stopped, or
	// ended cleanly and not restarted.
	UnitStopped UnitState = "stopped"
	// UnitStarting: its process is being started.
	UnitStarting UnitState = "starting"
	// UnitRunning: its main process runs.
	UnitRunning UnitState = "running"
	// UnitRestarting: its process ended and will be started again after
	// the unit's RestartDelay.
	UnitRestarting UnitState = "restarting"
	// UnitStopping: it is being stopped.
	UnitStopping UnitState = "stopping"
	// UnitFailed: its process ended unsuccessfully and is not restarted
	// (RestartNever, or it was restarted too often).
	UnitFailed UnitState = "failed"
)

// UnitStatus is a snapshot of a unit.
type UnitStatus struct {
	// Name is the unit's name.
	Name string
	// State is what the unit is doing.
	State UnitState
	// MainPID is the main process's PID as the node sees it; 0 when it
	// does not run.
	MainPID int
	// Exited reports whether a main process of this unit has ended since
	// the node started and none runs now; ExitCode is then how it ended:
	// its exit status, or 128+N when signal N ended it (as in [Result]).
	Exited   bool
	ExitCode int
	// Restarts counts automatic restarts since the unit was last started
	// on request (systemd's NRestarts).
	Restarts int
	// Since is when the unit entered its current state (to the second in
	// lab nodes).
	Since time.Time
}

// Running reports whether the unit's main process runs.
func (s UnitStatus) Running() bool { return s.State == UnitRunning }

// String describes the status for people: "running (pid 42)",
// "failed (exit status 1)", "restarting (killed by signal 9, 3 restarts)".
func (s UnitStatus) String() string {
	var parts []string
	if s.State == UnitRunning && s.MainPID > 0 {
		parts = append(parts, fmt.Sprintf("pid %d", s.MainPID))
	}
	if s.Exited && s.State != UnitRunning && s.State != UnitNotInstalled {
		if s.ExitCode > 128 && s.ExitCode <= 128+64 {
			parts = append(parts, fmt.Sprintf("last ended by signal %d", s.ExitCode-128))
		} else {
			parts = append(parts, fmt.Sprintf("last exit status %d", s.ExitCode))
		}
	}
	switch {
	case s.Restarts == 1:
		parts = append(parts, "1 restart")
	case s.Restarts > 1:
		parts = append(parts, fmt.Sprintf("%d restarts", s.Restarts))
	}
	if len(parts) == 0 {
		return string(s.State)
	}
	return string(s.State) + " (" + strings.Join(parts, ", ") + ")"
}

// ErrNoCapability is wrapped by errors for nodes whose transport lacks an
// optional capability.
var ErrNoCapability = errors.New("capability not offered")

// CapabilityError reports a node whose transport does not offer an
// optional capability, such as [Units]. It wraps [ErrNoCapability].
type CapabilityError struct {
	// Node and Provider name the node.
	Node, Provider string
	// Capability is the interface's name ("provider.Units").
	Capability string
	// Transport is the transport's type, or "no transport".
	Transport string
}

// Error implements the error interface.
func (e *CapabilityError) Error() string {
	return fmt.Sprintf("node %s (provider %s) does not offer %s: its transport (%s) does not implement it; use a provider whose nodes do, or a role that does not need it",
		e.Node, e.Provider, e.Capability, e.Transport)
}

// Unwrap returns ErrNoCapability.
func (e *CapabilityError) Unwrap() error { return ErrNoCapability }

// CapabilityOf returns the node's transport as the optional capability C
// (an interface type such as [Units]), or a *CapabilityError naming the
// node, the capability and the transport. It is how the graph resolves a
// role's declared capabilities at plan time, and how a role asks for one
// itself.
func CapabilityOf[C any](n *Node) (C, error) {
	var zero C
	name := fmt.Sprintf("%T", (*C)(nil))[1:]
	if n == nil {
		return zero, &CapabilityError{Node: "(none)", Capability: name, Transport: "no node"}
	}
	if c, ok := any(n.Transport).(C); ok && n.Transport != nil {
		return c, nil
	}
	tr := "no transport"
	if n.Transport != nil {
		tr = fmt.Sprintf("%T", n.Transport)
	}
	return zero, &CapabilityError{Node: n.Name, Provider: n.Provider, Capability: name, Transport: tr}
}

// UnitsOf returns the node's [Units], or a *CapabilityError when its
// transport cannot run units.
//
//	units, err := provider.UnitsOf(rc.Node())
//	if err != nil { return err }
//	change, err := units.InstallUnit(ctx, provider.Unit{Name: "etcd", Command: ...})
func UnitsOf(n *Node) (Units, error) { return CapabilityOf[Units](n) }
