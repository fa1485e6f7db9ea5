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

// conn is the one SSH connection kept per claimed host. A broken
// connection is replaced on the next command.
type conn struct {
	inv  *Inventory
	host Host
	user string
	sem  chan struct{}

	mu     sync.Mutex
	client *gossh.Client
	closed bool
}

func newConn(inv *Inventory, host Host, user string, c *gossh.Client) *conn {
	return &conn{inv: inv, host: host, user: user, client: c, sem: make(chan struct{}, inv.opts.MaxSessions)}
}

// session opens a session, reconnecting once if the connection broke.
func (c *conn) session(ctx context.Context) (*gossh.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("connection closed: the node was deleted")
	}
	if c.client != nil {
		s, err := newSession(c.client, c.inv.opts.ConnectTimeout)
		if err == nil {
			return s, nil
		}
		c.client.Close()
		c.client = nil
	}
	nc, user, err := c.inv.connect(ctx, c.host, []string{c.user})
	if err != nil {
		return nil, err
	}
	c.client, c.user = nc.client, user
	return newSession(c.client, c.inv.opts.ConnectTimeout)
}

// newSession opens a session, giving up (and closing the connection) when
// the server does not answer within timeout.
func newSession(c *gossh.Client, timeout time.Duration) (*gossh.Session, error) {
	type result struct {
		s   *gossh.Session
		err error
	}
	got := make(chan result, 1)
	go func() {
		s, err := c.NewSession()
		got <- result{s, err}
	}()
	select {
	case r := <-got:
		return r.s, r.err
	case <-time.After(timeout):
		c.Close() // makes the pending NewSession return
		return nil, fmt.Errorf("opening a session took longer than %s", timeout)
	}
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
}

// Transport runs commands on an SSH node over its shared connection.
type Transport struct {
	conn *conn
}

var _ provider.Transport = (*Transport)(nil)

// Run executes cmd through the login user's shell, arguments quoted. On
// timeout or cancellation the remote command is sent SIGKILL and the
// session closed.
func (t *Transport) Run(ctx context.Context, cmd provider.Command) (provider.Result, error) {
	if len(cmd.Args) == 0 {
		return provider.Result{}, errors.New("ssh: run: empty command")
	}
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
	s, err := t.conn.session(ctx)
	if err != nil {
		return provider.Result{}, fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, err)
	}
	defer s.Close()
	var stdout bytes.Buffer
	stderr := &pidWriter{}
	s.Stdout, s.Stderr = &stdout, stderr
	if cmd.Stdin != nil {
		s.Stdin = cmd.Stdin
	}
	began := time.Now()
	// The remote shell first reports its PID on stderr (stripped from the
	// result), so a timed-out command can be killed even where sshd refuses
	// signal requests (it does for root sessions).
	if err := s.Start(`printf '%s\n' "$$" >&2; ` + shfile.CommandLine(cmd)); err != nil {
		return provider.Result{}, fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		t.kill(s, stderr.PID())
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// The session ends when the remote side notices; don't wait.
		}
		return provider.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(began)},
			fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, ctx.Err())
	}
	res := provider.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(began)}
	var ee *gossh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		if ee.Signal() != "" {
			res.ExitCode = 128 + signalNumber(ee.Signal())
		}
	default:
		return res, fmt.Errorf("ssh: run %q on %s: %w", cmd.Args, where, err)
	}
	return res, nil
}

// kill ends a remote command: a KILL signal request, then, through a
// second session, SIGKILL to its process group (sshd makes each command a
// session leader), and finally closing its session.
func (t *Transport) kill(s *gossh.Session, pid int) {
	_ = s.Signal(gossh.SIGKILL)
	if pid > 0 {
		if ks, err := t.conn.session(context.Background()); err == nil {
			_ = ks.Run(fmt.Sprintf("kill -KILL -- -%d 2>/dev/null || kill -KILL %d 2>/dev/null", pid, pid))
			ks.Close()
		}
	}
	s.Close()
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
