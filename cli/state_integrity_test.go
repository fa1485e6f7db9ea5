package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/bolt"
)

const holdChildEnv = "MASON_CLI_TEST_HOLD_CHILD"

func TestMain(m *testing.M) {
	childtest.Dispatch(map[string]func(childtest.T){holdChildEnv: holdChild, labChildEnv: labChild})
	os.Exit(m.Run())
}

// A state file that was removed, emptied or replaced by another
// deployment's while the nodes live is refused by every command but
// destroy; nothing is created or written; destroy still works.
func TestLostStateIsRefused(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)

	other := newFrontEnd(t, strings.Replace(appSpec, `deployment = "front"`, `deployment = "back"`, 1))
	other.drv = c.drv
	code, _, errs = other.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)
	otherState := other.state

	for _, tc := range []struct {
		name   string
		break_ func()
		found  string
	}{
		{"removed", func() { require.NoError(t, os.Remove(c.state)) }, "did not exist"},
		{"emptied", func() { require.NoError(t, os.WriteFile(c.state, nil, 0o600)) }, "is empty"},
		{"another deployment's", func() {
			b, err := os.ReadFile(otherState)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(c.state, b, 0o600))
		}, "holds deployment back but not front"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved, err := os.ReadFile(c.state)
			require.NoError(t, err)
			tc.break_()
			nodes := c.drv.Count()
			for _, cmd := range []string{"plan", "apply", "status", "why"} {
				args := []string{cmd}
				if cmd == "why" {
					args = append(args, "verify")
				}
				code, out, errs := c.run(args...)
				require.Equal(t, cli.ExitFailure, code, "%s: %s%s", cmd, out, errs)
				require.Contains(t, errs, "state file "+c.state+" "+tc.found+", but provider mem still holds 3 nodes of deployment front (n1, n2, n3)", cmd)
				require.Contains(t, errs, "nothing was changed. Restore the state from a backup (or name the right one) and run again; or, to start over, run prov destroy -spec "+c.spec+" -state "+c.state+" -yes to remove the nodes first", cmd)
				require.Equal(t, nodes, c.drv.Count())
			}
			if tc.name == "removed" {
				_, err := os.Stat(c.state)
				require.ErrorIs(t, err, os.ErrNotExist, "no state file was left behind by the refused commands")
			}
			require.NoError(t, os.WriteFile(c.state, saved, 0o600)) // restored: all is well again
			code, out, errs := c.run("plan")
			require.Equal(t, cli.ExitOK, code, errs)
			require.Equal(t, "no changes: front is converged (7 node-roles)\n", out)
		})
	}
}

// Input is checked before anything is created.
func TestBadInputCreatesNothing(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	c.state = filepath.Join(t.TempDir(), "no", "such", "dir", "x.state")
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitFailure, code)
	require.Contains(t, errs, "does not exist: create it, or name another -state; nothing was changed")
	require.Equal(t, 0, c.drv.Count())

	c = newFrontEnd(t, appSpec)
	code, _, errs = c.run("apply", "-parallelism", "0")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errs, "-parallelism 0: want at least 1")
	require.Equal(t, 0, c.drv.Count())
	_, err := os.Stat(c.state)
	require.ErrorIs(t, err, os.ErrNotExist)

	// A plan of a new deployment writes no state file.
	code, _, errs = c.run("plan")
	require.Equal(t, cli.ExitOK, code, errs)
	_, err = os.Stat(c.state)
	require.ErrorIs(t, err, os.ErrNotExist, "plan created no state file")
}

// FounderOut is what the destructive founder role records.
type FounderOut struct{ Founded string }

// holdRegistry has one destructive service role; in the child, it tells
// the parent it runs (a file appears) and then waits to be killed.
func holdRegistry(ready string) *spec.Registry {
	reg := spec.NewRegistry()
	err := reg.Roles(role.Of(role.Func(role.Meta{Name: "founder", Version: "1", Scope: role.ScopeService, Destructive: true},
		func(ctx context.Context, rc *role.Context, _ struct{}) (FounderOut, error) {
			if ready != "" {
				if err := os.WriteFile(ready, []byte("running"), 0o644); err != nil {
					return FounderOut{}, err
				}
				<-ctx.Done() // the parent kills the process first
			}
			return FounderOut{Founded: "yes"}, nil
		})))
	if err != nil {
		panic(err)
	}
	return reg
}

func holdChild(t childtest.T) {
	args := strings.Split(os.Getenv(holdChildEnv), "\x1f") // unit separator: no NUL in the environment
	os.Exit(cli.Run(context.Background(), cli.App{Name: "prov", Registry: holdRegistry(os.Getenv("MASON_CLI_TEST_READY"))}, args, nil))
}

// A controller killed while a destructive role runs leaves it held; plan
// and apply say so and print the exact command that resumes it, and that
// command does.
func TestHeldStepPrintsTheCommandThatResumesIt(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "found.hcl")
	require.NoError(t, os.WriteFile(specFile, []byte("deployment = \"found\"\nrole \"founder\" {}\n"), 0o644))
	state := filepath.Join(dir, "found.state")
	ready := filepath.Join(dir, "ready")

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), holdChildEnv+"="+strings.Join([]string{"apply", "-spec", specFile, "-state", state}, "\x1f"), "MASON_CLI_TEST_READY="+ready)
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	require.NoError(t, child.Start())
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = child.Process.Kill()
			_ = child.Wait() // childOut is the child's until then
			t.Fatalf("the child never ran the founder: %s", childOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// While the child holds the state, another run says who holds it.
	var lockOut, lockErr bytes.Buffer
	lockCode := cli.Run(context.Background(), cli.App{Name: "prov", Registry: holdRegistry(""), Stdout: &lockOut, Stderr: &lockErr},
		[]string{"plan", "-spec", specFile, "-state", state}, nil)
	require.Equal(t, cli.ExitFailure, lockCode)
	require.Regexp(t, `^prov plan: bolt: state file `+regexp.QuoteMeta(state)+` is held by prov apply \(pid `+fmt.Sprint(child.Process.Pid)+` on [^,]+, since [^)]+\); stop that process or wait for it to finish`, lockErr.String())

	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	_ = child.Wait()

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), cli.App{Name: "prov", Registry: holdRegistry(""), Stdout: &out, Stderr: &errb},
			append(args, "-spec", specFile, "-state", state), nil)
		return code, out.String(), errb.String()
	}
	resume := "  prov apply -spec " + specFile + " -state " + state + " -force founder\n"
	code, out, errs := run("plan")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "founder is held: destructive role was interrupted while running (attempt 1)")
	require.Contains(t, out, "when the deployment is as it should be, resume with:\n"+resume)

	code, _, errs = run("apply")
	require.Equal(t, cli.ExitFailure, code)
	require.Contains(t, errs, "when the deployment is as it should be, resume with:\n"+resume)

	code, out, errs = run("apply", "-force", "founder")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "1 of 1 done (1 succeeded)")
	code, out, _ = run("plan")
	require.Equal(t, cli.ExitOK, code)
	require.Equal(t, "no changes: found is converged (1 node-role)\n", out)
}

// The state file held by this very process (a program embedding the
// front end that opened it already) is named as such.
func TestLockHeldByThisProcess(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)
	st, err := bolt.Open(c.state, &bolt.Options{Owner: "an embedding program"})
	require.NoError(t, err)
	defer st.Close()
	code, _, errs = c.run("plan")
	require.Equal(t, cli.ExitFailure, code)
	require.Contains(t, errs, "prov plan: bolt: state file "+c.state+" is already held by this process (an embedding program) (pid ")
}

// The key-encryption key beside the state: made by the first apply (mode
// 0600), then required and checked by every command before anything runs.
func TestKeyMissingOrWrongIsRefused(t *testing.T) {
	c := newFrontEnd(t, appSpec)
	code, _, errs := c.run("apply")
	require.Equal(t, cli.ExitOK, code, errs)
	keyFile := c.state + ".kek"
	fi, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	saved, err := os.ReadFile(keyFile)
	require.NoError(t, err)

	require.NoError(t, os.Remove(keyFile))
	for _, cmd := range []string{"plan", "apply"} {
		code, _, errs := c.run(cmd, "-var", "token=changed")
		require.Equal(t, cli.ExitFailure, code)
		require.Contains(t, errs, "deployment front in state file "+c.state+" exists, but its key-encryption key is missing (looked for key file "+keyFile+" or environment variable MASON_KEK)")
		_, err := os.Stat(keyFile)
		require.ErrorIs(t, err, os.ErrNotExist, "no new key was made")
	}
	require.NoError(t, os.WriteFile(keyFile, []byte(strings.Repeat("0f", 32)+"\n"), 0o600))
	code, _, errs = c.run("apply", "-var", "token=changed")
	require.Equal(t, cli.ExitFailure, code)
	require.Contains(t, errs, "is not the one deployment front in state file "+c.state+" was sealed with")
	t.Setenv("MASON_KEK", strings.TrimSpace(string(saved))) // the environment wins over the file
	code, out, errs := c.run("plan")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Equal(t, "no changes: front is converged (7 node-roles)\n", out)
}
