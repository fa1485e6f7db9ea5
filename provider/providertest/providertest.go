// Package providertest is the contract suite every provider driver must
// pass: create, get, list and delete with idempotency, readiness, the
// deployment stamp, and the
// transport's exec (stdout, stderr, exit codes, stdin, env, working
// directory, timeouts) and file put/get.
//
// A driver's test builds a [Harness] around a provider whose nodes it can
// really create and calls [Run]:
//
//	func TestContract(t *testing.T) {
//		l := openLab(t)
//		providertest.Run(t, providertest.Harness{
//			Provider: l.Provider(),
//			Spec:     func(i int) provider.NodeSpec { return provider.NodeSpec{ID: fmt.Sprintf("c%d", i)} },
//		})
//	}
package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

// Harness is what the suite needs from a driver's test.
type Harness struct {
	// Provider is the provider under test. Nodes the suite creates are
	// deleted by the suite.
	Provider *provider.Provider
	// Spec returns the spec of the suite's i-th node (i is 0 or 1). Specs
	// must have distinct IDs; drivers that adopt existing machines map
	// them to distinct machines.
	Spec func(i int) provider.NodeSpec
}

// Run runs the whole contract suite. Subtests run one after another and
// delete what they create.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"CreateGetListDelete", testLifecycle},
		{"CreateIsIdempotent", testCreateIdempotent},
		{"InvalidSpecRefused", testInvalidSpec},
		{"ExecOutputAndExitCodes", testExec},
		{"ExecStdinEnvDir", testExecInput},
		{"ExecTimeout", testTimeout},
		{"ExecConcurrent", testConcurrent},
		{"PutGet", testPutGet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// create makes spec i ready and deletes it when the test ends.
func create(t *testing.T, h Harness, i int) *provider.Node {
	t.Helper()
	ctx := ctxT(t)
	spec := h.Spec(i)
	if spec.Deployment == "" {
		spec.Deployment = "mason-contract"
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Provider.Delete(ctx, spec.ID); err != nil {
			t.Errorf("delete %s: %v", spec.ID, err)
		}
	})
	n, err := h.Provider.Create(ctx, spec)
	require.NoError(t, err)
	n, err = h.Provider.WaitReady(ctx, n.ID)
	require.NoError(t, err)
	return n
}

func ids(ns []*provider.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func testLifecycle(t *testing.T, h Harness) {
	ctx := ctxT(t)
	spec := h.Spec(0)
	n := create(t, h, 0)
	require.Equal(t, "mason-contract", n.Deployment(), "the node carries the deployment it was created for")
	require.Equal(t, spec.ID, n.ID)
	require.Equal(t, h.Provider.Name(), n.Provider)
	require.Equal(t, provider.StateRunning, n.State)
	require.True(t, n.InterfaceAddr.IsValid(), "a ready node has an interface address")
	require.Contains(t, append(append([]any{}, toAny(n.PrivateAddrs)...), toAny(n.PublicAddrs)...), any(n.InterfaceAddr),
		"the interface address is one of the node's addresses")
	require.NotEmpty(t, n.Login.User, "a ready node knows its login user")
	for k, v := range spec.Labels {
		require.Equal(t, v, n.Labels[k], "label %s", k)
	}

	got, err := h.Provider.Get(ctx, spec.ID)
	require.NoError(t, err)
	require.Equal(t, n.ID, got.ID)
	require.Equal(t, n.InterfaceAddr, got.InterfaceAddr)
	require.Equal(t, "mason-contract", got.Deployment())
	mine, err := h.Provider.DeploymentNodes(ctx, "mason-contract")
	require.NoError(t, err)
	require.Contains(t, ids(mine), spec.ID)
	require.NoError(t, provider.Ready(ctx, got))

	list, err := h.Provider.List(ctx)
	require.NoError(t, err)
	require.Contains(t, ids(list), spec.ID)

	require.NoError(t, h.Provider.Delete(ctx, spec.ID))
	_, err = h.Provider.Get(ctx, spec.ID)
	require.ErrorIs(t, err, provider.ErrNotFound)
	list, err = h.Provider.List(ctx)
	require.NoError(t, err)
	require.NotContains(t, ids(list), spec.ID)
	require.NoError(t, h.Provider.Delete(ctx, spec.ID), "deleting a missing node succeeds")
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func testCreateIdempotent(t *testing.T, h Harness) {
	ctx := ctxT(t)
	a := create(t, h, 0)
	spec := h.Spec(0)
	spec.Deployment = "mason-contract"
	b, err := h.Provider.Create(ctx, spec)
	require.NoError(t, err)
	spec.Deployment = "mason-other"
	_, err = h.Provider.Create(ctx, spec)
	require.ErrorContains(t, err, "belongs to deployment", "a node of another deployment is not handed out")
	require.Equal(t, a.ID, b.ID)
	require.Equal(t, a.InterfaceAddr, b.InterfaceAddr, "a second Create returns the same node")
	c := create(t, h, 1)
	require.NotEqual(t, a.ID, c.ID)
	require.NotEqual(t, a.InterfaceAddr, c.InterfaceAddr, "distinct nodes have distinct addresses")

	list, err := h.Provider.List(ctx)
	require.NoError(t, err)
	count := 0
	for _, n := range list {
		if n.ID == a.ID {
			count++
		}
	}
	require.Equal(t, 1, count, "the node is listed once")
}

func testInvalidSpec(t *testing.T, h Harness) {
	ctx := ctxT(t)
	for _, id := range []string{"", "Upper", "has space", "-lead", strings.Repeat("x", 64)} {
		spec := h.Spec(0)
		spec.ID = id
		_, err := h.Provider.Create(ctx, spec)
		require.Error(t, err, "ID %q", id)
	}
}

func testExec(t *testing.T, h Harness) {
	ctx := ctxT(t)
	n := create(t, h, 0)
	tests := []struct {
		name        string
		script      string
		code        int
		out, errOut string
	}{
		{"success", "echo out; echo err >&2", 0, "out\n", "err\n"},
		{"exit 3", "echo partial; exit 3", 3, "partial\n", ""},
		{"exit 255", "exit 255", 255, "", ""},
		{"missing program", "exec /nonexistent/mason-missing", 127, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := provider.Command{Args: []string{"sh", "-c", tc.script}}
			res, err := n.Transport.Run(ctx, cmd)
			require.NoError(t, err, "a non-zero exit is not a transport error")
			require.Equal(t, tc.code, res.ExitCode)
			require.Equal(t, tc.out, string(res.Stdout))
			if tc.errOut != "" {
				require.Equal(t, tc.errOut, string(res.Stderr))
			}
			var ee *provider.ExitError
			if tc.code == 0 {
				require.NoError(t, res.Err(cmd))
			} else {
				require.ErrorAs(t, res.Err(cmd), &ee)
				require.Equal(t, tc.code, ee.Code)
			}
		})
	}
}

func testExecInput(t *testing.T, h Harness) {
	ctx := ctxT(t)
	n := create(t, h, 0)
	res, err := n.Transport.Run(ctx, provider.Command{
		Args:  []string{"sh", "-c", `cat; printf '%s|%s|' "$MASON_A" "$MASON_B"; pwd`},
		Env:   []string{"MASON_A=one two", "MASON_B=it's"},
		Dir:   "/tmp",
		Stdin: strings.NewReader("from stdin\n"),
	})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "stderr: %s", res.Stderr)
	require.Equal(t, "from stdin\none two|it's|/tmp\n", string(res.Stdout))

	// Arguments reach the program unchanged, whatever they contain.
	args := []string{"printf", "%s\\n", "a b", "$HOME", "'q'", `"d"`, "x;y", ""}
	res, err = n.Transport.Run(ctx, provider.Command{Args: args})
	require.NoError(t, err)
	require.Equal(t, "a b\n$HOME\n'q'\n\"d\"\nx;y\n\n", string(res.Stdout))
}

func testTimeout(t *testing.T, h Harness) {
	ctx := ctxT(t)
	n := create(t, h, 0)
	// A unique duration marks the command so we can look for it afterwards.
	mark := fmt.Sprintf("%d.%03d", 600+time.Now().UnixNano()%300, time.Now().UnixNano()%1000)
	_, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "sleep " + mark + "; true"}, Timeout: 300 * time.Millisecond})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "timeout error wraps context.DeadlineExceeded: %v", err)
	// The command and its children were killed, not left running.
	find := provider.Command{Args: []string{"sh", "-c", `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' <"$f" 2>/dev/null; echo; done | grep -c "^sleep $0 " || true`, mark}}
	require.Eventually(t, func() bool {
		res, err := n.Transport.Run(ctx, find)
		return err == nil && string(res.Stdout) == "0\n"
	}, 10*time.Second, 100*time.Millisecond, "the timed-out command was killed")

	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err = n.Transport.Run(cctx, provider.Command{Args: []string{"sleep", "60"}})
	require.ErrorIs(t, err, context.Canceled)

	// The transport still works afterwards.
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"echo", "alive"}})
	require.NoError(t, err)
	require.Equal(t, "alive\n", string(res.Stdout))
}

func testConcurrent(t *testing.T, h Harness) {
	ctx := ctxT(t)
	n := create(t, h, 0)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"echo", fmt.Sprint(i)}})
			if err == nil && string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("worker %d got %q", i, res.Stdout)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func testPutGet(t *testing.T, h Harness) {
	ctx := ctxT(t)
	n := create(t, h, 0)
	dir := fmt.Sprintf("/tmp/mason-contract-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = n.Transport.Run(context.Background(), provider.Command{Args: []string{"rm", "-rf", dir}})
	})
	data := bytes.Repeat([]byte("mason\x00\xff\n"), 40000) // binary, ~300 KiB
	path := dir + "/sub/dir/file.bin"
	require.NoError(t, n.Transport.Put(ctx, path, bytes.NewReader(data), provider.FileOptions{Mode: 0o600}))
	got, err := n.Transport.Get(ctx, path)
	require.NoError(t, err)
	require.Equal(t, data, got)

	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"stat", "-c", "%a", path}})
	require.NoError(t, err)
	require.Equal(t, "600\n", string(res.Stdout))

	require.NoError(t, n.Transport.Put(ctx, path, strings.NewReader("second"), provider.FileOptions{}))
	got, err = n.Transport.Get(ctx, path)
	require.NoError(t, err)
	require.Equal(t, "second", string(got), "Put replaces the file")
	res, err = n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "stat -c %a " + path + "; ls -A " + dir + "/sub/dir"}})
	require.NoError(t, err)
	require.Equal(t, "644\nfile.bin\n", string(res.Stdout), "default mode 0644, no temporary files left")

	_, err = n.Transport.Get(ctx, dir+"/missing")
	require.ErrorIs(t, err, fs.ErrNotExist)

	if n.Login.User == "root" {
		owned := dir + "/owned"
		require.NoError(t, n.Transport.Put(ctx, owned, strings.NewReader("x"), provider.FileOptions{Owner: "nobody", Group: "nogroup"}))
		res, err = n.Transport.Run(ctx, provider.Command{Args: []string{"stat", "-c", "%U:%G", owned}})
		require.NoError(t, err)
		require.Equal(t, "nobody:nogroup\n", string(res.Stdout))
	}
	require.Error(t, n.Transport.Put(ctx, "relative/path", strings.NewReader("x"), provider.FileOptions{}))
}
