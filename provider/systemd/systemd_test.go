package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

func TestParseShow(t *testing.T) {
	tests := []struct {
		name string
		show string
		want provider.UnitStatus
	}{
		{"not installed", "LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainCode=0\nExecMainStatus=0\nNRestarts=0\n",
			provider.UnitStatus{State: provider.UnitNotInstalled}},
		{"running", "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=412\nExecMainCode=0\nExecMainStatus=0\nNRestarts=2\nStateChangeTimestamp=@1700000000\n",
			provider.UnitStatus{State: provider.UnitRunning, MainPID: 412, Restarts: 2, Since: time.Unix(1700000000, 0)}},
		{"waiting to restart after SIGKILL", "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nMainPID=0\nExecMainCode=2\nExecMainStatus=9\nNRestarts=0\n",
			provider.UnitStatus{State: provider.UnitRestarting, Exited: true, ExitCode: 137}},
		{"failed with status 3", "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\nExecMainCode=1\nExecMainStatus=3\nNRestarts=0\n",
			provider.UnitStatus{State: provider.UnitFailed, Exited: true, ExitCode: 3}},
		{"stopped", "LoadState=loaded\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainCode=2\nExecMainStatus=15\nNRestarts=0\n",
			provider.UnitStatus{State: provider.UnitStopped, Exited: true, ExitCode: 143}},
		{"never started", "LoadState=loaded\nActiveState=inactive\nSubState=dead\nMainPID=0\nExecMainCode=0\nExecMainStatus=0\nNRestarts=0\n",
			provider.UnitStatus{State: provider.UnitStopped}},
		{"stopping", "LoadState=loaded\nActiveState=deactivating\nSubState=stop-sigterm\nMainPID=77\nExecMainCode=0\nExecMainStatus=0\nNRestarts=0\n",
			provider.UnitStatus{State: provider.UnitStopping}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseShow("etcd", tc.show)
			require.NoError(t, err)
			tc.want.Name = "etcd"
			require.Equal(t, tc.want, got)
		})
	}
	_, err := ParseShow("etcd", "Failed to connect to bus")
	require.Error(t, err)
}

// needAnalyze skips (outside CI) or fails (in CI) without systemd-analyze.
func needAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("systemd-analyze missing (Debian package systemd): %v", err)
		}
		t.Fatal(err)
	}
	return p
}

// Every unit file mason writes passes systemd's own checker without a
// single complaint.
func TestUnitFilesVerify(t *testing.T) {
	analyze := needAnalyze(t)
	dir := t.TempDir()
	units := []provider.Unit{
		{Name: "mason-minimal", Command: []string{"/bin/sleep", "infinity"}},
		{
			Name: "mason-etcd", Description: "etcd member n1 (100% replicated)", Documentation: "https://etcd.io/docs/",
			Command: []string{"/bin/sh", "-c", `echo "$HOME is 50% full; see \"df\""; exec sleep 1000`, "arg with spaces", "semi;colon", ""},
			Env:     []string{"GREETING=hello world", "PRICE=$5", `QUOTE=say "hi"`, `BACK=a\b`, "PCT=100%"},
			Dir:     "/var/tmp", Restart: provider.RestartAlways, RestartDelay: 1500 * time.Millisecond,
			StopTimeout: 30 * time.Second, LimitNOFILE: 40000,
			Requires: []string{"mason-minimal"}, After: []string{"network-online.target"},
			Systemd: []string{"OOMScoreAdjust=-999", "KillMode=process", "Delegate=yes"},
		},
		{Name: "mason-never", Command: []string{"/bin/true"}, Restart: provider.RestartNever},
	}
	var files []string
	for _, u := range units {
		require.NoError(t, u.Validate())
		f := filepath.Join(dir, u.FileName())
		require.NoError(t, os.WriteFile(f, u.SystemdFile(), 0o644))
		files = append(files, f)
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, string(bytes.TrimSpace(out)), "systemd-analyze verify has no complaint")

	// The checker does complain about broken files, so silence means something.
	bad := filepath.Join(dir, "mason-bad.service")
	require.NoError(t, os.WriteFile(bad, []byte("[Service]\nExecStart=/bin/true\nRestart=sometimes\n"), 0o644))
	out, _ = exec.Command(analyze, "verify", "--man=no", bad).CombinedOutput()
	require.Contains(t, string(out), "restart specifier")
}
