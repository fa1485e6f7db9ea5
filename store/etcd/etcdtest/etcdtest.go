// Package etcdtest runs real etcd server processes for tests: Debian's
// etcd-server package (/usr/bin/etcd), one process per member, listening on
// free loopback ports, with data directories under the test's temp dir.
//
// Every process is stopped by its PID when the test ends (SIGTERM, then
// SIGKILL after a grace period), and is also killed if the test binary
// dies first. When a test fails, the tail of each member's log is printed.
//
// When the etcd binary is missing the test is skipped if the CI environment
// variable is unset and fails otherwise, as mason's test rules require.
//
//	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
//	s, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "t/"})
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultBinary is where Debian's etcd-server package installs etcd.
const DefaultBinary = "/usr/bin/etcd"

// Options shape the cluster Start runs.
type Options struct {
	// Members is the number of etcd processes; zero means 1.
	Members int
	// Binary is the etcd executable; empty means $MASON_ETCD or
	// DefaultBinary.
	Binary string
	// TLS, when set, makes the members serve clients over TLS only.
	TLS *ServerTLS
	// ExtraArgs are appended to every member's command line.
	ExtraArgs []string
	// Dir holds the members' data directories and logs; empty means a new
	// temporary directory that Stop removes.
	Dir string
}

// ServerTLS holds PEM files for the members' client listeners. Peer
// traffic stays on plain loopback HTTP.
type ServerTLS struct {
	CertFile, KeyFile string
	// TrustedCAFile, when set, makes members require client certificates
	// signed by it (--client-cert-auth).
	TrustedCAFile string
	// Client is the configuration Start's readiness check connects with:
	// it must trust the server certificate and present a client
	// certificate when TrustedCAFile is set.
	Client *tls.Config
}

// Cluster is a running set of etcd members.
type Cluster struct {
	// Members are the cluster's processes, in start order.
	Members []*Member
	tls     *tls.Config
	rmdir   string // removed by Stop
}

// Member is one etcd process.
type Member struct {
	Name      string // m0, m1, ...
	ClientURL string // where clients connect, http(s)://127.0.0.1:port
	PeerURL   string // where the other members connect
	DataDir   string // the member's --data-dir
	LogFile   string // the member's stdout and stderr

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
}

// BinaryPath returns the etcd executable tests use: $MASON_ETCD, or
// DefaultBinary.
func BinaryPath() string {
	if bin := os.Getenv("MASON_ETCD"); bin != "" {
		return bin
	}
	return DefaultBinary
}

// Binary returns [BinaryPath], or skips (CI unset) or fails (CI set) the
// test when there is no executable there.
func Binary(t testing.TB) string {
	t.Helper()
	bin := BinaryPath()
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("etcd server binary %s not found (install Debian's etcd-server, or set MASON_ETCD); CI is unset, so skipping", bin)
		}
		t.Fatalf("etcd server binary %s not found: %v (CI must install etcd-server from .ci/debian-packages)", bin, err)
	}
	return bin
}

// Start runs an etcd cluster for the test and waits until every member
// answers a linearizable read. The cluster is stopped when the test ends;
// if the test failed, the tail of every member's log is logged first.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Binary == "" {
		opts.Binary = Binary(t)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := Launch(opts)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("etcd member %s log (last lines of %s):\n%s", m.Name, m.LogFile, tail(m.LogFile, 30))
			}
		}
		c.Stop()
	})
	return c
}

// Launch runs an etcd cluster and waits until every member answers a
// linearizable read; the caller must Stop it. It retries with new ports
// when a port it picked was taken by someone else in the meantime. Tests
// should call [Start] instead; Launch is for TestMain and examples.
func Launch(opts Options) (*Cluster, error) {
	if opts.Binary == "" {
		opts.Binary = BinaryPath()
	}
	if opts.Members <= 0 {
		opts.Members = 1
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := launch(opts, attempt)
		if err == nil {
			return c, nil
		}
		lastErr = err
		c.Stop()
	}
	return nil, fmt.Errorf("starting a %d-member etcd cluster with %s: %w", opts.Members, opts.Binary, lastErr)
}

func launch(opts Options, attempt int) (*Cluster, error) {
	c := &Cluster{}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "etcdtest-")
		if err != nil {
			return c, fmt.Errorf("creating a data directory: %w", err)
		}
		dir, c.rmdir = d, d
	} else {
		dir = filepath.Join(dir, fmt.Sprintf("try%d", attempt))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return c, fmt.Errorf("creating a data directory: %w", err)
		}
	}
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
		c.tls = opts.TLS.Client
	}
	ports, err := freePorts(2 * opts.Members)
	if err != nil {
		return c, err
	}
	var initial []string
	for i := 0; i < opts.Members; i++ {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			DataDir:   filepath.Join(dir, fmt.Sprintf("m%d.etcd", i)),
			LogFile:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	token := fmt.Sprintf("mason-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, m := range c.Members {
		args := []string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			// Loopback is fast: short timeouts make elections after a
			// killed member take a fraction of a second, and lower the
			// minimum lease TTL (1.5 election timeouts) to 1s.
			"--heartbeat-interval", "50",
			"--election-timeout", "500",
			"--logger", "zap",
			"--log-outputs", "stderr",
		}
		if opts.TLS != nil {
			args = append(args, "--cert-file", opts.TLS.CertFile, "--key-file", opts.TLS.KeyFile)
			if opts.TLS.TrustedCAFile != "" {
				args = append(args, "--client-cert-auth", "--trusted-ca-file", opts.TLS.TrustedCAFile)
			}
		}
		args = append(args, opts.ExtraArgs...)
		if err := m.launch(opts.Binary, args); err != nil {
			return c, err
		}
	}
	if err := c.waitReady(30 * time.Second); err != nil {
		return c, err
	}
	return c, nil
}

func (m *Member) launch(bin string, args []string) error {
	logf, err := os.OpenFile(m.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("etcdtest: creating the log of member %s: %w", m.Name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	// The member dies with the test binary, even if the test never gets to
	// its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("etcdtest: starting %s for member %s: %w", bin, m.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return nil
}

// cleanEnv drops ETCD_* variables, which etcd reads as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Leader returns the member that is the raft leader now.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	ids := map[uint64]*Member{}
	var leader uint64
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		st, err := c.status(ctx, m)
		if err != nil {
			continue
		}
		ids[st.Header.MemberId] = m
		if st.Leader != 0 {
			leader = st.Leader
		}
	}
	if m := ids[leader]; m != nil {
		return m, nil
	}
	return nil, errors.New("etcdtest: no running member reports a running leader")
}

func (c *Cluster) status(ctx context.Context, m *Member) (*clientv3.StatusResponse, error) {
	cli, err := c.client([]string{m.ClientURL})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return cli.Status(ctx, m.ClientURL)
}

func (c *Cluster) client(eps []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, TLS: c.tls, Logger: zap.NewNop()})
}

// waitReady polls every member with a linearizable read, which succeeds
// only once the cluster has elected a leader.
func (c *Cluster) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, m := range c.Members {
		for {
			if !m.Running() {
				return fmt.Errorf("member %s exited during startup (port taken?); its log:\n%s", m.Name, tail(m.LogFile, 15))
			}
			err := func() error {
				cli, err := c.client([]string{m.ClientURL})
				if err != nil {
					return err
				}
				defer cli.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err = cli.Get(ctx, "etcdtest-ready")
				return err
			}()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("member %s not ready after %v: %v; its log:\n%s", m.Name, timeout, err, tail(m.LogFile, 15))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// PID returns the member's process id, or 0 when it is not running.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	select {
	case <-m.done:
		return 0
	default:
		return m.cmd.Process.Pid
	}
}

// Running reports whether the member's process is alive.
func (m *Member) Running() bool { return m.PID() != 0 }

// Kill ends the member with SIGKILL, as a crash would, and waits until the
// process is gone.
func (m *Member) Kill() error { return m.signal(syscall.SIGKILL, 10*time.Second) }

// Stop ends the member with SIGTERM, escalating to SIGKILL after 10s.
func (m *Member) Stop() error {
	if err := m.signal(syscall.SIGTERM, 10*time.Second); err != nil {
		return m.Kill()
	}
	return nil
}

func (m *Member) signal(sig syscall.Signal, wait time.Duration) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("etcdtest: signalling member %s (pid %d): %w", m.Name, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("etcdtest: member %s (pid %d) still running %v after %v", m.Name, cmd.Process.Pid, wait, sig)
	}
}

// Stop stops every member (SIGTERM, then SIGKILL) and removes the data
// directory Launch created. It is safe to call more than once.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	for _, m := range c.Members {
		_ = m.Stop()
	}
	if c.rmdir != "" {
		_ = os.RemoveAll(c.rmdir)
	}
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// free when this returns; Start retries if one is taken before etcd binds.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: finding a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
