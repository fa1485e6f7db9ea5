package provider

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUnitValidate(t *testing.T) {
	ok := Unit{Name: "etcd", Command: []string{"/usr/bin/etcd"}}
	tests := []struct {
		name  string
		edit  func(u *Unit)
		field string // in the error; "" means valid
	}{
		{"minimal", func(u *Unit) {}, ""},
		{"everything", func(u *Unit) {
			u.Description, u.Documentation, u.Dir = "etcd member", "https://etcd.io", "/var/lib/etcd"
			u.Env, u.Restart, u.RestartDelay, u.StopTimeout, u.LimitNOFILE = []string{"A=b c"}, RestartAlways, 5*time.Second, time.Minute, 40000
			u.Requires, u.After, u.Systemd = []string{"containerd"}, []string{"network-online.target"}, []string{"Delegate=yes"}
		}, ""},
		{"empty name", func(u *Unit) { u.Name = "" }, "unit name"},
		{"name with a slash", func(u *Unit) { u.Name = "../etc" }, "unit name"},
		{"name with suffix", func(u *Unit) { u.Name = "etcd.service" }, "unit name"},
		{"no command", func(u *Unit) { u.Command = nil }, "Command"},
		{"relative program", func(u *Unit) { u.Command = []string{"etcd"} }, "Command"},
		{"unclean program", func(u *Unit) { u.Command = []string{"/usr/bin/../bin/etcd"} }, "Command"},
		{"newline in an argument", func(u *Unit) { u.Command = []string{"/bin/echo", "a\nExecStartPre=/bin/rm"} }, "Command"},
		{"env without =", func(u *Unit) { u.Env = []string{"A"} }, "Env"},
		{"env with a bad key", func(u *Unit) { u.Env = []string{"A-B=1"} }, "Env"},
		{"env value with a newline", func(u *Unit) { u.Env = []string{"A=1\n[Install]"} }, "Env"},
		{"relative dir", func(u *Unit) { u.Dir = "var/lib" }, "Dir"},
		{"unknown policy", func(u *Unit) { u.Restart = "sometimes" }, "Restart"},
		{"negative delay", func(u *Unit) { u.RestartDelay = -time.Second }, "RestartDelay"},
		{"requires itself", func(u *Unit) { u.Requires = []string{"etcd"} }, "names itself"},
		{"bad requirement", func(u *Unit) { u.After = []string{"a b"} }, "Requires/After"},
		{"systemd line without key", func(u *Unit) { u.Systemd = []string{"yes"} }, "Systemd"},
		{"description with a newline", func(u *Unit) { u.Description = "x\n[Service]" }, "Description"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := ok
			u.Command = append([]string(nil), ok.Command...)
			tc.edit(&u)
			err := u.Validate()
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestSystemdFile(t *testing.T) {
	u := Unit{
		Name:          "etcd",
		Description:   "etcd member n1 (100% replicated)",
		Documentation: "https://etcd.io/docs/",
		Command: []string{"/usr/bin/etcd", "--name", "n1", "--data-dir=/var/lib/etcd", "--initial-cluster", "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380",
			"--log-level", "info"},
		Env:          []string{"ETCD_UNSUPPORTED_ARCH=arm64", "GREETING=hello world", "PRICE=$5"},
		Dir:          "/var/lib/etcd",
		RestartDelay: 5 * time.Second,
		LimitNOFILE:  40000,
		Requires:     []string{"containerd"},
		After:        []string{"network-online.target", "containerd.service"},
		Systemd:      []string{"OOMScoreAdjust=-999"},
	}
	require.NoError(t, u.Validate())
	require.Equal(t, `# Installed by mason; changes here are overwritten.
[Unit]
Description=etcd member n1 (100%% replicated)
Documentation=https://etcd.io/docs/
Requires=containerd.service
After=containerd.service network-online.target

[Service]
Environment=ETCD_UNSUPPORTED_ARCH=arm64
Environment="GREETING=hello world"
Environment=PRICE=$5
WorkingDirectory=/var/lib/etcd
ExecStart=/usr/bin/etcd \
  --name n1 \
  --data-dir=/var/lib/etcd \
  --initial-cluster n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380 \
  --log-level info
Restart=on-failure
RestartSec=5
TimeoutStopSec=90
LimitNOFILE=40000
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`, string(u.SystemdFile()))
}

func TestExecArgQuoting(t *testing.T) {
	tests := map[string]string{
		"plain":          "plain",
		"two words":      `"two words"`,
		`say "hi"`:       `"say \"hi\""`,
		`back\slash`:     `"back\\slash"`,
		"$HOME":          "$$HOME",
		"50%":            "50%%",
		";":              `";"`,
		"":               `""`,
		"it's":           `"it's"`,
		"a=b,c=d:e/f@g+": "a=b,c=d:e/f@g+",
	}
	for in, want := range tests {
		require.Equal(t, want, quoteExecArg(in), "argument %q", in)
	}
	require.Equal(t, "500ms", systemdDuration(500*time.Millisecond))
	require.Equal(t, "90", systemdDuration(90*time.Second))
	require.Equal(t, "1500ms", systemdDuration(1500*time.Millisecond))
}

type plainTransport struct{ Transport }

func TestCapabilityOf(t *testing.T) {
	n := &Node{Name: "n2", Provider: "ssh", Transport: plainTransport{}}
	_, err := UnitsOf(n)
	var ce *CapabilityError
	require.ErrorAs(t, err, &ce)
	require.True(t, errors.Is(err, ErrNoCapability))
	require.Equal(t, "provider.Units", ce.Capability)
	require.Equal(t, "node n2 (provider ssh) does not offer provider.Units: its transport (provider.plainTransport) does not implement it; use a provider whose nodes do, or a role that does not need it", err.Error())

	_, err = UnitsOf(&Node{Name: "n3", Provider: "lab"})
	require.ErrorContains(t, err, "(no transport)")
	_, err = UnitsOf(nil)
	require.ErrorIs(t, err, ErrNoCapability)
}

func TestUnitStatusString(t *testing.T) {
	require.Equal(t, "running (pid 42, 2 restarts)", UnitStatus{State: UnitRunning, MainPID: 42, Restarts: 2}.String())
	require.Equal(t, "failed (last exit status 3)", UnitStatus{State: UnitFailed, Exited: true, ExitCode: 3}.String())
	require.Equal(t, "restarting (last ended by signal 9, 1 restart)", UnitStatus{State: UnitRestarting, Exited: true, ExitCode: 137, Restarts: 1}.String())
	require.Equal(t, "not-installed", UnitStatus{State: UnitNotInstalled}.String())
}
