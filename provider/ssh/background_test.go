package ssh

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
)

// A command that starts a background process returns when the command
// exits — at once when the background process's output is redirected,
// WaitDelay later when it still holds the session's output — and the
// background process keeps running.
func TestBackgroundCommandDoesNotHang(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "daemons", client.PublicKey(), []string{"root"}, true)
	ctx := ctxT(t)
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m)})
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
	require.NoError(t, err)

	// The background processes sleep for five minutes and the command's
	// timeout is one: a Run that waited for them would end in its timeout,
	// an error, instead of the command's own exit (no wall-clock bound that
	// a loaded machine could miss).
	tests := []struct{ name, script, marker string }{
		{"output redirected", "sleep 301 >/dev/null 2>&1 & echo started", "sleep 301"},
		{"output inherited", "sleep 302 & echo started", "sleep 302"},
		{"stderr inherited", "sleep 303 >/dev/null & echo started", "sleep 303"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", tc.script}, Timeout: time.Minute})
			require.NoError(t, err, "Run waited for the background process")
			require.Equal(t, 0, res.ExitCode)
			require.Equal(t, "started\n", string(res.Stdout))
			ps := sh(t, ctx, m.node, "ps -eo args")
			require.Contains(t, ps, tc.marker, "the background process survives the session")
			sh(t, ctx, m.node, "pkill -f '^"+tc.marker+"$' || true")
		})
	}

	// Exit codes and output still arrive whole for ordinary commands.
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo; echo oops >&2; exit 7"}})
	require.NoError(t, err)
	require.Equal(t, 7, res.ExitCode)
	require.Equal(t, strings.Repeat("x", 300000)+"\n", string(res.Stdout))
	require.Equal(t, "oops\n", string(res.Stderr))
}
