package graph_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/bolt"
)

// crashEnv names the directory a re-executed test binary works in: the
// child process of TestSIGKILLResume.
const crashEnv = "MASON_GRAPH_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	childtest.Dispatch(map[string]func(childtest.T){foEnv: controllerProcess, removeCrashEnv: removeCrashChild})
	if dir := os.Getenv(crashEnv); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type TokenOut struct{ Token string }
type UseIn struct{ T role.Same[TokenOut] }
type UseOut struct{ Used string }
type SumIn struct{ All role.All[UseOut] }
type SumOut struct{ N int }

// crashDeployment: on 6 nodes a token role makes a fresh random token
// every run, a use role consumes it, and a cluster role sums all uses.
// Every run appends "done <id> <value>" to effects.log.
func crashDeployment(effects string) *graph.Deployment {
	logLine := func(line string) error {
		f, err := os.OpenFile(effects, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(line + "\n")
		return err
	}
	token := role.Func(role.Meta{Name: "token"}, func(ctx context.Context, rc *role.Context, _ struct{}) (TokenOut, error) {
		time.Sleep(15 * time.Millisecond)
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		t := hex.EncodeToString(b)
		return TokenOut{Token: t}, logLine("done token@" + rc.Node().Name + " " + t)
	})
	use := role.Func(role.Meta{Name: "use"}, func(ctx context.Context, rc *role.Context, in UseIn) (UseOut, error) {
		time.Sleep(15 * time.Millisecond)
		return UseOut{Used: in.T.Value.Token}, logLine("done use@" + rc.Node().Name + " " + in.T.Value.Token)
	})
	sum := role.Func(role.Meta{Name: "sum", Scope: role.ScopeCluster}, func(ctx context.Context, rc *role.Context, in SumIn) (SumOut, error) {
		return SumOut{N: len(in.All)}, logLine(fmt.Sprintf("done sum@%s %d", rc.Node().Name, len(in.All)))
	})
	d := graph.NewDeployment("crash")
	d.Bind(d.Pool("p", nodes(nodeNames(6)...)...), role.Of(token), role.Of(use), role.Of(sum))
	return d
}

func crashChild(dir string) error {
	st, err := bolt.Open(filepath.Join(dir, "state.db"), &bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := graph.NewPlan(context.Background(), crashDeployment(filepath.Join(dir, "effects.log")), st)
	if err != nil {
		return err
	}
	_, err = graph.Apply(context.Background(), p, graph.Options{Parallelism: 2})
	return err
}

// effects reads the child's side-effect log: for every node-role, the
// values of its completed runs, in order.
func effects(t *testing.T, path string) map[string][]string {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string][]string{}
	}
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) == 3 && parts[0] == "done" {
			out[parts[1]] = append(out[parts[1]], parts[2])
		}
	}
	return out
}

// A real process is killed with SIGKILL in the middle of a run, then run
// again on the same state file: it converges, nothing that was journaled
// as completed runs twice, and no consumer keeps an output its producer
// lost (a re-run producer would have made a new token).
func TestSIGKILLResume(t *testing.T) {
	var dir, logPath string
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		return cmd
	}
	var completed map[string]bool
	// The kill must land mid-run, after something was journaled as
	// completed: on a loaded machine the first try may miss; try again.
	for try := 0; ; try++ {
		dir = t.TempDir()
		logPath = filepath.Join(dir, "effects.log")
		cmd := child()
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		require.Eventually(t, func() bool {
			n := 0
			for _, v := range effects(t, logPath) {
				n += len(v)
			}
			return n >= 6
		}, 30*time.Second, time.Millisecond, "the child did not get going")
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		state, err := cmd.Process.Wait()
		require.NoError(t, err)
		require.Equal(t, "signal: killed", state.String())

		// What the journal holds as completed at the moment of the kill.
		st, err := bolt.Open(filepath.Join(dir, "state.db"), nil)
		require.NoError(t, err)
		entries, err := graph.ReadJournal(context.Background(), st, "crash")
		require.NoError(t, err)
		require.NoError(t, st.Close())
		completed = map[string]bool{}
		for _, e := range entries {
			if e.State == graph.StateSucceeded {
				completed[e.ID] = true
			}
		}
		if len(completed) > 0 && len(completed) < 13 {
			break
		}
		require.Less(t, try, 5, "the kill never landed mid-run: %d completed", len(completed))
	}
	atKill := effects(t, logPath)

	restart := child()
	out, err := restart.CombinedOutput()
	require.NoError(t, err, string(out))

	st, err := bolt.Open(filepath.Join(dir, "state.db"), nil)
	require.NoError(t, err)
	defer st.Close()
	entries, err := graph.ReadJournal(context.Background(), st, "crash")
	require.NoError(t, err)
	require.Len(t, entries, 13)
	for _, e := range entries {
		require.Contains(t, []graph.State{graph.StateSucceeded, graph.StateSkipped}, e.State, e.ID)
		require.False(t, e.Succeeded.IsZero(), e.ID)
	}
	final := effects(t, logPath)
	for id := range completed {
		require.Len(t, final[id], 1, "%s was journaled as completed before the kill but ran again", id)
	}
	for _, n := range nodeNames(6) {
		tok, use := final["token@"+n], final["use@"+n]
		require.NotEmpty(t, tok)
		require.NotEmpty(t, use)
		// The consumer's last run used the producer's last output.
		require.Equal(t, tok[len(tok)-1], use[len(use)-1], "use@%s consumed a token that was lost", n)
		// Anything that ran twice ran first without a durable success.
		if len(tok) > 1 {
			require.False(t, completed["token@"+n])
			require.Empty(t, atKill["use@"+n], "use@%s consumed token@%s's output before it was durable", n, n)
		}
	}
	require.Equal(t, []string{"6"}, final["sum@n1"])
	t.Logf("completed at kill: %d of 13; runs before kill: %d; re-runs of unjournaled completions: %d",
		len(completed), count(atKill), count(final)-13)
}

func count(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
