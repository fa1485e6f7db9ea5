package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/internal/shfile"
)

// Transport runs commands inside a lab node by entering all of its
// namespaces with nsenter (a Go process cannot safely setns its own mount
// namespace). Commands run as root with a clean environment (PATH, HOME,
// LANG) plus Command.Env. Files move through the node's own shell, so they
// land in the node's view of the file system (its /etc overlay, its
// /var/lib).
type Transport struct {
	pid   int
	start uint64 // the init's start time, so a reused PID is never entered
}

var _ provider.Transport = (*Transport)(nil)

// Run executes cmd in the node. On timeout or cancellation the whole
// process group (nsenter and the command) is killed.
func (t *Transport) Run(ctx context.Context, cmd provider.Command) (provider.Result, error) {
	if len(cmd.Args) == 0 {
		return provider.Result{}, errors.New("lab: run: empty command")
	}
	if st, err := procStartTime(t.pid); err != nil || st != t.start || exited(t.pid) {
		return provider.Result{}, fmt.Errorf("lab: run %q: node init (pid %d) is gone: delete the node and create it again", cmd.Args, t.pid)
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	wd := cmd.Dir
	if wd == "" {
		wd = "/"
	}
	args := []string{"-t", strconv.Itoa(t.pid), "-m", "-u", "-i", "-n", "-p", "--wdns=" + wd, "--"}
	c := exec.CommandContext(ctx, "nsenter", append(args, cmd.Args...)...)
	c.Env = append(nodeEnv(), cmd.Env...)
	c.Stdin = cmd.Stdin
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	// A command that leaves a daemon holding its output must not hang Run.
	c.WaitDelay = 2 * time.Second

	began := time.Now()
	err := c.Run()
	res := provider.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(began)}
	if ctx.Err() != nil {
		return res, fmt.Errorf("lab: run %q in node (pid %d): %w", cmd.Args, t.pid, ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		switch {
		case ws.Exited():
			res.ExitCode = ws.ExitStatus()
		case ws.Signaled():
			res.ExitCode = 128 + int(ws.Signal())
		default:
			res.ExitCode = -1
		}
		// nsenter failing because the node is gone is a transport error.
		if res.ExitCode != 0 && (exited(t.pid) || !t.same()) {
			return res, fmt.Errorf("lab: enter node (pid %d): %s", t.pid, bytes.TrimSpace(res.Stderr))
		}
	case errors.Is(err, exec.ErrWaitDelay):
	default:
		return res, fmt.Errorf("lab: run %q in node (pid %d): %w", cmd.Args, t.pid, err)
	}
	return res, nil
}

// Put writes data to path inside the node, atomically (temporary file and
// rename), with the mode and owner in opts.
func (t *Transport) Put(ctx context.Context, path string, data io.Reader, opts provider.FileOptions) error {
	if err := shfile.Put(ctx, t.Run, path, data, opts); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Get reads path inside the node. A missing file gives an error wrapping
// fs.ErrNotExist.
func (t *Transport) Get(ctx context.Context, path string) ([]byte, error) {
	b, err := shfile.Get(ctx, t.Run, path)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return b, nil
}

func (t *Transport) same() bool {
	st, err := procStartTime(t.pid)
	return err == nil && st == t.start
}
