package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
	pid     int
	start   uint64 // the init's start time, so a reused PID is never entered
	systemd bool   // the node boots systemd (ImageSystemd)
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
	if t.systemd {
		args = append([]string{"-C"}, args...) // the node's cgroup namespace too
	}
	c := exec.CommandContext(ctx, "nsenter", append(args, cmd.Args...)...)
	c.Env = append(nodeEnv(), cmd.Env...)
	c.Stdin = cmd.Stdin
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	// Only a stdin copy can outlast the command now (see output).
	c.WaitDelay = 2 * time.Second

	began := time.Now()
	stdout, stderr, err := runCollect(c)
	res := provider.Result{Stdout: stdout, Stderr: stderr, Duration: time.Since(began)}
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

// runCollect runs c with its standard output and error on pipes of our
// own and returns what the command wrote once it has exited. A daemon the
// command started in the background may still hold the pipes; Run must
// not wait for it (exec.Cmd would, until WaitDelay), so after the exit we
// take what is buffered and close our ends.
func runCollect(c *exec.Cmd) (stdout, stderr []byte, err error) {
	var outs [2]pipeOutput
	for i := range outs {
		if outs[i].r, outs[i].w, err = os.Pipe(); err != nil {
			for j := range i {
				outs[j].r.Close()
				outs[j].w.Close()
			}
			return nil, nil, err
		}
	}
	c.Stdout, c.Stderr = outs[0].w, outs[1].w
	err = c.Start()
	for i := range outs {
		outs[i].w.Close()
	}
	if err != nil {
		for i := range outs {
			outs[i].r.Close()
		}
		return nil, nil, err
	}
	for i := range outs {
		outs[i].start()
	}
	err = c.Wait()
	for i := range outs {
		outs[i].finish()
	}
	return outs[0].buf.Bytes(), outs[1].buf.Bytes(), err
}

// pipeOutput collects one pipe.
type pipeOutput struct {
	r, w *os.File
	buf  bytes.Buffer
	done chan struct{}
}

func (o *pipeOutput) start() {
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		_, _ = io.Copy(&o.buf, o.r)
	}()
}

// finish stops the reader (the command has exited), then reads whatever
// is still buffered without waiting for writers that remain.
func (o *pipeOutput) finish() {
	_ = o.r.SetReadDeadline(time.Now())
	<-o.done
	_ = o.r.SetReadDeadline(time.Time{})
	if rc, err := o.r.SyscallConn(); err == nil {
		p := make([]byte, 32<<10)
		_ = rc.Read(func(fd uintptr) bool {
			for {
				n, _ := unix.Read(int(fd), p)
				if n <= 0 {
					return true // drained (EAGAIN), end of file, or an error
				}
				o.buf.Write(p[:n])
			}
		})
	}
	o.r.Close()
}
