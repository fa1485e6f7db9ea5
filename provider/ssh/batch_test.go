package ssh

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
)

// The batch script and its splitting agree, whatever the commands print
// (no trailing newline, nothing, something that looks like a frame), run
// here by the local sh.
func TestBatchScriptRoundTrip(t *testing.T) {
	cmds := []provider.Command{
		{Args: []string{"printf", "no newline"}},
		{Args: []string{"true"}},
		{Args: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}},
		{Args: []string{"sh", "-c", "printf '\\nmason-batch-00 1 0\\n'; printf 'x\\n\\n'"}},
		{Args: []string{"sh", "-c", "echo \"$FOO\" in $(pwd)"}, Env: []string{"FOO=b a r"}, Dir: "/"},
		{Args: []string{"sh", "-c", "kill -TERM $$"}},
	}
	want := []batchOut{
		{complete: true, stdout: []byte("no newline"), stderr: []byte{}},
		{complete: true, stdout: []byte{}, stderr: []byte{}},
		{complete: true, stdout: []byte("out\n"), stderr: []byte("err\n"), exit: 3},
		{complete: true, stdout: []byte("\nmason-batch-00 1 0\nx\n\n"), stderr: []byte{}},
		{complete: true, stdout: []byte("b a r in /\n"), stderr: []byte{}},
		{complete: true, stdout: []byte{}, stderr: nil, exit: 128 + 15}, // stderr: the shell may note the signal
	}
	const marker = "mason-batch-0123abcd"
	cmd := exec.Command("sh", "-c", batchScript(marker, cmds))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err)
	got := splitBatch(marker, len(cmds), stdout, []byte(stderr.String()))
	for i := range want {
		require.Equal(t, want[i].complete, got[i].complete, "command %d", i)
		require.Equal(t, string(want[i].stdout), string(got[i].stdout), "command %d", i)
		if want[i].stderr != nil {
			require.Equal(t, string(want[i].stderr), string(got[i].stderr), "command %d", i)
		}
		require.Equal(t, want[i].exit, got[i].exit, "command %d", i)
	}

	// A batch cut short: the finished members are complete, the rest not.
	cut := splitBatch(marker, len(cmds), stdout[:len(stdout)/2], []byte(stderr.String()))
	require.True(t, cut[0].complete)
	require.False(t, cut[len(cmds)-1].complete)
}

// Batch commands sent together run in one remote shell (their subshells
// share a parent) and each gets its own output and status; a Batch
// command whose timeout expires is killed and reports it, while the
// others of its batch get their results.
func TestBatchedCommands(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "batched", client.PublicKey(), []string{"root"}, true)
	ctx := ctxT(t)
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m),
		BatchWindow: 50 * time.Millisecond})
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
	require.NoError(t, err)

	type outcome struct {
		res provider.Result
		err error
	}
	runAll := func(cmds []provider.Command) []outcome {
		out := make([]outcome, len(cmds))
		var wg sync.WaitGroup
		for i, c := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i].res, out[i].err = n.Transport.Run(ctx, c)
			}()
		}
		wg.Wait()
		return out
	}

	// Each prints its parent's PID: the batch's shell for all of them.
	var cmds []provider.Command
	for i := 0; i < 5; i++ {
		cmds = append(cmds, provider.Command{Args: []string{"sh", "-c", "echo $PPID; echo " + strings.Repeat("e", i) + " >&2; exit " + string(rune('0'+i))}, Batch: true})
	}
	got := runAll(cmds)
	parent := ""
	for i, o := range got {
		require.NoError(t, o.err)
		require.Equal(t, i, o.res.ExitCode)
		require.Equal(t, strings.Repeat("e", i)+"\n", string(o.res.Stderr))
		if parent == "" {
			parent = string(o.res.Stdout)
		}
		require.Equal(t, parent, string(o.res.Stdout), "command %d ran in the same remote shell", i)
	}
	// Unbatched, each has a shell of its own.
	a, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "echo $PPID"}})
	require.NoError(t, err)
	require.NotEqual(t, parent, string(a.Stdout))

	// One member's timeout: it is killed and fails; the others get their
	// results (those the kill cut off run again alone).
	got = runAll([]provider.Command{
		{Args: []string{"echo", "quick"}, Batch: true},
		{Args: []string{"sleep", "321"}, Batch: true, Timeout: time.Second},
		{Args: []string{"echo", "after"}, Batch: true},
	})
	for _, o := range got {
		if o.err == nil {
			require.Contains(t, []string{"quick\n", "after\n"}, string(o.res.Stdout))
			continue
		}
		require.ErrorIs(t, o.err, context.DeadlineExceeded)
	}
	require.Error(t, got[1].err)
	require.NoError(t, got[0].err)
	require.NoError(t, got[2].err)
	require.Eventually(t, func() bool {
		return !strings.Contains(sh(t, ctx, m.node, "ps -eo args"), "sleep 321")
	}, 20*time.Second, 100*time.Millisecond, "the timed-out command was killed")

	// A Batch command with stdin runs alone, stdin intact.
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"cat"}, Stdin: strings.NewReader("in"), Batch: true})
	require.NoError(t, err)
	require.Equal(t, "in", string(res.Stdout))
}
