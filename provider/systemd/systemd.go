// Package systemd runs mason units with systemd, over any
// provider.Transport: the unit's file ([provider.Unit.SystemdFile]) is
// installed as /etc/systemd/system/NAME.service, followed by `systemctl
// daemon-reload` and `systemctl enable`, started with systemctl; status
// comes from `systemctl show`, logs from journalctl (the unit's own
// output, as journald recorded it).
//
// Transports of machines that run systemd offer [provider.Units] through
// this package: the ssh transport (so ssh and vSphere nodes), and lab
// nodes booted with systemd. Each operation is one shell script run
// through the transport; a login user other than root needs passwordless
// sudo.
//
//	units := systemd.New(node.Transport)
//	change, err := units.InstallUnit(ctx, provider.Unit{Name: "etcd", Command: []string{"/usr/bin/etcd", "--config-file", "/etc/etcd/etcd.yml"}})
package systemd

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/internal/unitop"
)

// Dir is where unit files are installed.
const Dir = "/etc/systemd/system"

// Units implements [provider.Units] with the systemd of the machine behind
// a transport. It is safe for concurrent use.
type Units struct {
	t provider.Transport
}

var _ provider.Units = (*Units)(nil)

// New returns the units of the machine t reaches.
func New(t provider.Transport) *Units { return &Units{t: t} }

// preamble checks that systemd runs the machine; every script starts with it.
const preamble = `set -eu
command -v systemctl >/dev/null 2>&1 || { echo "systemctl not found: units on this machine need systemd" >&2; exit 46; }
[ -d /run/systemd/system ] || { echo "systemd does not run this machine (no /run/systemd/system): units need systemd as init" >&2; exit 46; }
u=$1.service
loaded() { [ "$(systemctl show -p LoadState --value "$u")" != not-found ]; }
active() { systemctl show -p ActiveState --value "$u"; }
`

// installScript installs the unit file (the here-document FILE) and makes
// sure the unit runs; it prints what it did.
const installScript = `
f=` + Dir + `/$u
tmp=$(mktemp /etc/systemd/.mason-unit.XXXXXX)
trap 'rm -f "$tmp"' EXIT
base64 -d >"$tmp" <<'__MASON_EOF__'
FILE
__MASON_EOF__
chmod 0644 "$tmp"
existed=0
[ -f "$f" ] && existed=1
if [ $existed = 1 ] && cmp -s "$tmp" "$f"; then
	changed=0
else
	changed=1
	mv -f "$tmp" "$f"
fi
trap - EXIT
rm -f "$tmp"
# Enabled before the reload, so that multi-user.target wants the unit and
# systemd keeps its state (its last exit) once it stops.
if [ "$(systemctl is-enabled "$u" 2>/dev/null)" != enabled ]; then
	systemctl enable --no-reload --quiet "$u"
	changed_links=1
fi
[ $changed = 0 ] && [ -z "${changed_links:-}" ] || systemctl daemon-reload
props=$(systemctl show -p ActiveState,SubState "$u")
prop() { printf '%s\n' "$props" | sed -n "s/^$1=//p"; }
state=$(prop ActiveState)
[ "$state" != failed ] || systemctl reset-failed "$u"
if [ $changed = 1 ]; then
	case $state in
	active | activating | reloading | deactivating) systemctl restart "$u" ;;
	*) systemctl start "$u" ;;
	esac
	if [ $existed = 1 ]; then echo updated; else echo created; fi
elif [ "$state" = active ] && [ "$(prop SubState)" = running ]; then
	echo unchanged
else
	systemctl start "$u"
	echo started
fi
`

var opScripts = map[string]string{
	"start": `loaded || { echo "unit $u is not installed" >&2; exit 44; }
systemctl reset-failed "$u" 2>/dev/null || true
systemctl start "$u"
`,
	"stop": `loaded || exit 0
systemctl stop "$u"
`,
	"restart": `loaded || { echo "unit $u is not installed" >&2; exit 44; }
systemctl reset-failed "$u" 2>/dev/null || true
systemctl restart "$u"
`,
	"remove": `if loaded; then
	systemctl stop "$u"
	systemctl disable --no-reload --quiet "$u" 2>/dev/null || true
fi
if [ -e ` + Dir + `/"$u" ]; then
	rm -f ` + Dir + `/"$u"
	systemctl daemon-reload
fi
[ "$(active)" != failed ] || systemctl reset-failed "$u"
`,
	"status": `systemctl show "$u" --timestamp=unix -p LoadState,ActiveState,SubState,MainPID,ExecMainCode,ExecMainStatus,NRestarts,StateChangeTimestamp 2>/dev/null ||
	systemctl show "$u" -p LoadState,ActiveState,SubState,MainPID,ExecMainCode,ExecMainStatus,NRestarts
`,
	"logs": `n=$2
if [ "$n" -gt 0 ]; then
	journalctl --no-pager -q -o cat "_SYSTEMD_UNIT=$u" -n "$n"
else
	journalctl --no-pager -q -o cat "_SYSTEMD_UNIT=$u"
fi
`,
}

// InstallUnit implements [provider.Units].
func (s *Units) InstallUnit(ctx context.Context, u provider.Unit) (provider.UnitChange, error) {
	if err := u.Validate(); err != nil {
		return "", fmt.Errorf("systemd: %w", err)
	}
	file := base64.StdEncoding.EncodeToString(u.SystemdFile())
	script := preamble + unitop.CheckProgram(u) + strings.Replace(installScript, "\nFILE\n", "\n"+file+"\n", 1)
	out, err := s.op(ctx, "install", u.Name, script)
	if err != nil {
		return "", err
	}
	fields := strings.Fields(out)
	if len(fields) > 0 {
		switch c := provider.UnitChange(fields[len(fields)-1]); c {
		case provider.UnitCreated, provider.UnitUpdated, provider.UnitStarted, provider.UnitUnchanged:
			return c, nil
		}
	}
	return "", fmt.Errorf("systemd: install unit %s: unexpected answer %q", u.Name, out)
}

// StartUnit implements [provider.Units].
func (s *Units) StartUnit(ctx context.Context, name string) error {
	_, err := s.named(ctx, "start", name)
	return err
}

// StopUnit implements [provider.Units].
func (s *Units) StopUnit(ctx context.Context, name string) error {
	_, err := s.named(ctx, "stop", name)
	return err
}

// RestartUnit implements [provider.Units].
func (s *Units) RestartUnit(ctx context.Context, name string) error {
	_, err := s.named(ctx, "restart", name)
	return err
}

// RemoveUnit implements [provider.Units]: stop, disable, delete the file,
// daemon-reload. The journal keeps the unit's logs.
func (s *Units) RemoveUnit(ctx context.Context, name string) error {
	_, err := s.named(ctx, "remove", name)
	return err
}

// UnitLogs implements [provider.Units]: the unit's output from journald.
func (s *Units) UnitLogs(ctx context.Context, name string, lines int) (string, error) {
	return s.named(ctx, "logs", name, strconv.Itoa(max(lines, 0)))
}

// UnitStatus implements [provider.Units], from `systemctl show`.
func (s *Units) UnitStatus(ctx context.Context, name string) (provider.UnitStatus, error) {
	out, err := s.named(ctx, "status", name)
	if err != nil {
		return provider.UnitStatus{}, err
	}
	st, err := ParseShow(name, out)
	if err != nil {
		return st, fmt.Errorf("systemd: status of unit %s: %w", name, err)
	}
	return st, nil
}

// ParseShow turns the output of `systemctl show -p LoadState,ActiveState,
// SubState,MainPID,ExecMainCode,ExecMainStatus,NRestarts,
// StateChangeTimestamp --timestamp=unix` into a status.
func ParseShow(name, out string) (provider.UnitStatus, error) {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			kv[k] = v
		}
	}
	st := provider.UnitStatus{Name: name}
	if kv["LoadState"] == "" || kv["ActiveState"] == "" {
		return st, fmt.Errorf("unexpected answer from systemctl show: %q", out)
	}
	if kv["LoadState"] == "not-found" {
		st.State = provider.UnitNotInstalled
		return st, nil
	}
	sub := kv["SubState"]
	switch kv["ActiveState"] {
	case "active", "reloading":
		st.State = provider.UnitRunning
		if sub == "exited" {
			st.State = provider.UnitStopped
		}
	case "activating":
		st.State = provider.UnitStarting
		if sub == "auto-restart" {
			st.State = provider.UnitRestarting
		}
	case "deactivating":
		st.State = provider.UnitStopping
	case "failed":
		st.State = provider.UnitFailed
	default:
		st.State = provider.UnitStopped
	}
	num := func(k string) int { n, _ := strconv.Atoi(kv[k]); return n }
	st.Restarts = num("NRestarts")
	if st.State == provider.UnitRunning {
		st.MainPID = num("MainPID")
	}
	// ExecMainCode is the si_code of the main process's end: 1 exited,
	// 2 killed, 3 dumped core; 0 while it runs or before it ever ran.
	switch code, status := num("ExecMainCode"), num("ExecMainStatus"); code {
	case 1:
		st.Exited, st.ExitCode = true, status
	case 2, 3:
		st.Exited, st.ExitCode = true, 128+status
	}
	if st.State == provider.UnitRunning {
		st.Exited, st.ExitCode = false, 0
	}
	if ts, ok := strings.CutPrefix(kv["StateChangeTimestamp"], "@"); ok {
		if secs, err := strconv.ParseInt(ts, 10, 64); err == nil {
			st.Since = time.Unix(secs, 0)
		}
	}
	return st, nil
}

func (s *Units) named(ctx context.Context, op, name string, args ...string) (string, error) {
	if err := provider.ValidUnitName(name); err != nil {
		return "", fmt.Errorf("systemd: %w", err)
	}
	return s.op(ctx, op, name, preamble+opScripts[op], args...)
}

// asRoot runs the shell that reads the script from stdin as root: directly
// for root, through sudo -n for another login user.
const asRoot = `if [ "$(id -u)" = 0 ]; then exec sh -s -- "$@"; fi
command -v sudo >/dev/null 2>&1 || { echo "units need root: the login user is not root and sudo is not installed" >&2; exit 47; }
exec sudo -n sh -s -- "$@"`

// op runs script (fed to the shell on stdin) as root with the unit's name
// as $1 and args after it.
func (s *Units) op(ctx context.Context, op, name, script string, args ...string) (string, error) {
	argv := append([]string{"sh", "-c", asRoot, "mason-unit", name}, args...)
	res, err := s.t.Run(ctx, provider.Command{Args: argv, Stdin: strings.NewReader(script)})
	return unitop.Outcome("systemd", op, name, res, err)
}
