package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/internal/shfile"
)

// Transport runs commands on an SSH node over its shared connection.
type Transport struct {
	conn *conn
}

var _ provider.Transport = (*Transport)(nil)

// Run executes cmd through the login user's shell, arguments quoted. On
// timeout or cancellation the remote command is sent SIGKILL and the
// session closed. A command that leaves a background process holding its
// output returns [WaitDelay] after it exited.
//
// Commands marked [provider.Command.Batch] (and without Stdin) are group
// committed per machine: the first waits Options.BatchWindow for company,
// then those queued go as one remote shell, each in its own subshell with
// stdin from /dev/null; while a batch runs, new ones queue for the next
// (at most 32 a batch). Each gets its own output and exit status (one
// ended by signal N gets 128+N, and its stderr may end with the shell's
// note of it); its Result.Duration is the batch's. Timeouts stay per command: when one
// expires the batch is killed, that command's Run returns the deadline
// error, the commands that had finished get their results, and the
// unfinished others run again alone — which is why Batch is only for
// commands that merely read.
func (t *Transport) Run(ctx context.Context, cmd provider.Command) (provider.Result, error) {
	if len(cmd.Args) == 0 {
		return provider.Result{}, errors.New("ssh: run: empty command")
	}
	if cmd.Batch && cmd.Stdin == nil {
		if cmd.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
			defer cancel()
		}
		return t.conn.batch.run(ctx, t, cmd)
	}
	return t.runOne(ctx, cmd)
}

// runOne runs cmd on a session of its own.
func (t *Transport) runOne(ctx context.Context, cmd provider.Command) (provider.Result, error) {
	return t.runLine(ctx, cmd, shfile.CommandLine(cmd))
}

// runLine runs the shell line for cmd (whose Args name it in errors, and
// whose Stdin and Timeout apply) on a session of its own.
func (t *Transport) runLine(ctx context.Context, cmd provider.Command, line string) (provider.Result, error) {
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	where := t.conn.host.Name
	select {
	case t.conn.sem <- struct{}{}:
		defer func() { <-t.conn.sem }()
	case <-ctx.Done():
		return provider.Result{}, fmt.Errorf("ssh: run %q on %s: waiting for a session: %w", cmd.Args, where, ctx.Err())
	}
	stdout := &lockedBuffer{}
	stderr := &pidWriter{}
	began := time.Now()
	// The remote shell first reports its PID on stderr (stripped from the
	// result), so a timed-out command can be killed even where sshd refuses
	// signal requests (it does for root sessions).
	s, err := t.conn.startSession(ctx, `printf '%s\n' "$$" >&2; `+line, cmd.Stdin, stdout, stderr)
	if err != nil {
		return provider.Result{}, fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, err)
	}
	exit, err := s.wait(ctx)
	if err != nil && ctx.Err() != nil {
		t.kill(ctx, s, stderr.PID())
		return provider.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(began)},
			fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, ctx.Err())
	}
	res := provider.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(began)}
	if err != nil {
		return res, fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, err)
	}
	res.ExitCode = exit.status
	if exit.signal != "" {
		res.ExitCode = 128 + signalNumber(exit.signal)
	}
	return res, nil
}

// kill ends a remote command: a KILL signal request, then, through a
// second session, SIGKILL to its process group (sshd makes each command a
// session leader), and finally closing its session.
func (t *Transport) kill(ctx context.Context, s *session, pid int) {
	s.sendSignal(gossh.SIGKILL)
	if pid > 0 {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		line := fmt.Sprintf("kill -KILL -- -%d 2>/dev/null || kill -KILL %d 2>/dev/null", pid, pid)
		if ks, err := t.conn.startSession(kctx, line, nil, io.Discard, io.Discard); err == nil {
			_, _ = ks.wait(kctx)
			ks.close()
		}
	}
	s.close()
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once:
// a background process may still write to a command's output while Run
// returns what it has.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// pidWriter collects stderr, taking the first line as the remote PID.
type pidWriter struct {
	mu     sync.Mutex
	head   []byte
	pid    int
	gotPID bool
	buf    bytes.Buffer
}

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if !w.gotPID {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.head = append(w.head, p...)
			return n, nil
		}
		w.head = append(w.head, p[:i]...)
		w.pid, _ = strconv.Atoi(string(w.head))
		w.gotPID = true
		p = p[i+1:]
	}
	w.buf.Write(p)
	return n, nil
}

// PID returns the remote shell's PID, or 0 if not reported yet.
func (w *pidWriter) PID() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid
}

// Bytes returns stderr without the PID line.
func (w *pidWriter) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.gotPID {
		return append([]byte(nil), w.head...)
	}
	return append([]byte(nil), w.buf.Bytes()...)
}

// signalNumber maps SSH signal names to Linux numbers for 128+n exit codes.
func signalNumber(name string) int {
	switch gossh.Signal(name) {
	case gossh.SIGHUP:
		return 1
	case gossh.SIGINT:
		return 2
	case gossh.SIGQUIT:
		return 3
	case gossh.SIGILL:
		return 4
	case gossh.SIGABRT:
		return 6
	case gossh.SIGFPE:
		return 8
	case gossh.SIGKILL:
		return 9
	case gossh.SIGSEGV:
		return 11
	case gossh.SIGPIPE:
		return 13
	case gossh.SIGALRM:
		return 14
	case gossh.SIGTERM:
		return 15
	case gossh.SIGUSR1:
		return 10
	case gossh.SIGUSR2:
		return 12
	}
	return 0
}

// Put writes data to path on the node atomically (temporary file and
// rename) with the mode and owner in opts; setting an owner other than the
// login user needs root.
func (t *Transport) Put(ctx context.Context, path string, data io.Reader, opts provider.FileOptions) error {
	if err := shfile.Put(ctx, t.Run, path, data, opts); err != nil {
		return fmt.Errorf("ssh: %s: %w", t.conn.host.Name, err)
	}
	return nil
}

// Get reads path on the node. A missing file gives an error wrapping
// fs.ErrNotExist.
func (t *Transport) Get(ctx context.Context, path string) ([]byte, error) {
	b, err := shfile.Get(ctx, t.Run, path)
	if err != nil {
		return nil, fmt.Errorf("ssh: %s: %w", t.conn.host.Name, err)
	}
	return b, nil
}
