package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
)

// TestMain lets the test binary be a holder (Persist.Start runs it again)
// and a controller process of its own (see runChildController).
func TestMain(m *testing.M) {
	HolderMain()
	if cfg := os.Getenv("MASON_SSH_TEST_CONTROLLER"); cfg != "" {
		os.Exit(runChildController(cfg))
	}
	os.Exit(m.Run())
}

// childConfig is what a controller child process does: claim one host
// through a holder in Dir and run a command.
type childConfig struct {
	Dir, KnownHosts, Name, Addr string
	Key                         []byte // PEM, for the child only
	Idle                        time.Duration
}

// runChildController is the child: it prints the command's output and
// the node's hostname fact as JSON.
func runChildController(cfg string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	key, err := gossh.ParsePrivateKey(c.Key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	inv, err := Open(Options{Hosts: []Host{{Name: c.Name, Addr: c.Addr, Users: []string{"root"}}}, Signers: []gossh.Signer{key},
		KnownHosts: c.KnownHosts, Persist: &Persist{Dir: c.Dir, Idle: c.Idle, Start: true}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer inv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: c.Name})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"echo", "hello"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, held := n.Transport.(*Transport).conn.upstreamNow().(*heldConn)
	out, _ := json.Marshal(map[string]any{"stdout": string(res.Stdout), "hostname": n.Facts["hostname"], "held": held})
	fmt.Println(string(out))
	return 0
}

// sshdConnections counts the connections the machine's sshd accepted.
func sshdConnections(t *testing.T, m machine) int {
	t.Helper()
	ctx := ctxT(t)
	out := sh(t, ctx, m.node, "grep -c 'Accepted publickey' /var/log/mason-test-sshd.log || true")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	require.NoError(t, err)
	return n
}

// Two controller processes, one after the other, share one connection to
// the machine through the holder the first one started; the holder exits
// after its idle time.
func TestHolderReusedAcrossProcesses(t *testing.T) {
	l := newLab(t)
	priv, client := newKey(t)
	m := startMachine(t, l, "held", client.PublicKey(), []string{"root"}, true)
	kh := knownHostsFile(t, m)
	dir := filepath.Join(t.TempDir(), "holder")
	block, err := gossh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	// The children name known_hosts relative to their working directory;
	// the holder they start runs in another.
	cfg, err := json.Marshal(childConfig{Dir: dir, KnownHosts: filepath.Base(kh), Name: m.name, Addr: m.node.InterfaceAddr.String(),
		Key: pem.EncodeToMemory(block), Idle: 4 * time.Second})
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	child := func() map[string]any {
		cmd := exec.Command(exe)
		cmd.Dir = filepath.Dir(kh)
		cmd.Env = append(os.Environ(), "MASON_SSH_TEST_CONTROLLER="+string(cfg))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "controller child: %s", stderr.String())
		var got map[string]any
		require.NoError(t, json.Unmarshal(out, &got), "%s", out)
		return got
	}
	first := child()
	require.Equal(t, "hello\n", first["stdout"])
	require.Equal(t, true, first["held"])
	pid := holderPID(t, dir)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
	second := child()
	require.Equal(t, "hello\n", second["stdout"])
	require.Equal(t, true, second["held"])
	require.Equal(t, first["hostname"], second["hostname"], "facts kept with the connection")
	require.NotEmpty(t, second["hostname"])
	require.Equal(t, 1, sshdConnections(t, m), "the second process reused the holder's connection")

	// Nobody connected: the holder exits after Idle and removes its socket.
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, holderSocket))
		return errors.Is(err, os.ErrNotExist) && !processAlive(pid)
	}, time.Minute, 50*time.Millisecond, "the holder exits when idle")
}

// holderPID reads the PID the holder wrote into its lock file.
func holderPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, holderLock))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err, "lock file %q", b)
	return pid
}

// processAlive is false for a process that is gone or a zombie (this
// machine's PID 1 may not reap the holder's orphan).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// serveHolder runs a holder in this process until the returned stop is
// called (or the test ends).
func serveHolder(t *testing.T, dir string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHolder(ctx, Persist{Dir: dir, Idle: time.Hour}) }()
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, holderPub))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func heldNow(n *provider.Node) bool {
	_, ok := n.Transport.(*Transport).conn.upstreamNow().(*heldConn)
	return ok
}

// Through a holder, commands behave as over a direct connection (a
// timed-out command is killed, a background one returns); when the holder
// dies mid-run, the next command connects directly, with a warning.
func TestHolderCommandsAndFallback(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "fallback", client.PublicKey(), []string{"root"}, true)
	dir := filepath.Join(t.TempDir(), "holder")
	stop := serveHolder(t, dir)
	logs := &lockedBuffer{} // the inventory's log lines
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m),
		Persist: &Persist{Dir: dir}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := ctxT(t)
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
	require.NoError(t, err)
	require.True(t, heldNow(n), "the connection is the holder's")
	require.NotEmpty(t, n.Facts["hostname"])

	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo oops >&2; exit 5"}})
	require.NoError(t, err)
	require.Equal(t, 5, res.ExitCode)
	require.Equal(t, 200000, len(res.Stdout))
	require.Equal(t, "oops\n", string(res.Stderr))
	res, err = n.Transport.Run(ctx, provider.Command{Args: []string{"cat"}, Stdin: strings.NewReader("through the holder")})
	require.NoError(t, err)
	require.Equal(t, "through the holder", string(res.Stdout))

	_, err = n.Transport.Run(ctx, provider.Command{Args: []string{"sleep", "311"}, Timeout: time.Second})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool {
		return !strings.Contains(sh(t, ctx, m.node, "ps -eo args"), "sleep 311")
	}, 20*time.Second, 100*time.Millisecond, "the timed-out command was killed")

	res, err = n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c", "sleep 312 & echo started"}, Timeout: time.Minute})
	require.NoError(t, err, "a background command returns through the holder")
	require.Equal(t, "started\n", string(res.Stdout))
	sh(t, ctx, m.node, "pkill -f '^sleep 312$' || true")
	require.Equal(t, 1, sshdConnections(t, m))

	stop() // the holder dies; the inventory notices at the next command
	res, err = n.Transport.Run(ctx, provider.Command{Args: []string{"echo", "direct"}})
	require.NoError(t, err)
	require.Equal(t, "direct\n", string(res.Stdout))
	require.False(t, heldNow(n), "the connection is the inventory's own now")
	require.Contains(t, string(logs.Bytes()), "connecting directly")
	require.Equal(t, 2, sshdConnections(t, m))
}

// A controller refuses a holder directory others may enter, and a socket
// whose server does not have the key published in the directory; the
// holder refuses connections from other users. Refused, the inventory
// connects directly.
func TestHolderRefusals(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "refusals", client.PublicKey(), []string{"root"}, true)
	kh := knownHostsFile(t, m)
	dir := filepath.Join(t.TempDir(), "holder")
	serveHolder(t, dir)
	ctx := ctxT(t)
	create := func(t *testing.T) (*provider.Node, string) {
		logs := &lockedBuffer{} // the inventory's log lines
		inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh,
			Persist: &Persist{Dir: dir}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
		require.NoError(t, err)
		return n, string(logs.Bytes())
	}

	t.Run("directory open to others", func(t *testing.T) {
		require.NoError(t, os.Chmod(dir, 0o755))
		defer os.Chmod(dir, 0o700)
		n, logs := create(t)
		require.False(t, heldNow(n))
		require.Contains(t, logs, "has mode 0755")
	})
	t.Run("socket with another key", func(t *testing.T) {
		pub := filepath.Join(dir, holderPub)
		orig, err := os.ReadFile(pub)
		require.NoError(t, err)
		defer os.WriteFile(pub, orig, 0o600)
		_, other := newKey(t)
		require.NoError(t, os.WriteFile(pub, gossh.MarshalAuthorizedKey(other.PublicKey()), 0o600))
		n, logs := create(t)
		require.False(t, heldNow(n))
		require.Contains(t, logs, "host key mismatch")
	})
	t.Run("other user", func(t *testing.T) {
		// Debian's python3, not a per-user install another user may not run.
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			if os.Getenv("CI") == "" {
				t.Skip("/usr/bin/python3 (Debian package python3-minimal) is the other user's client")
			}
			t.Fatal(err)
		}
		// Open the directory and socket so that only the holder's own
		// check stands between another user and it.
		require.NoError(t, os.Chmod(dir, 0o711))
		defer os.Chmod(dir, 0o700)
		for p := dir; p != "/"; p = filepath.Dir(p) {
			st, err := os.Stat(p)
			require.NoError(t, err)
			if st.Mode().Perm()&0o001 == 0 {
				require.NoError(t, os.Chmod(p, st.Mode().Perm()|0o001))
				defer os.Chmod(p, st.Mode().Perm())
			}
		}
		sock := filepath.Join(dir, holderSocket)
		require.NoError(t, os.Chmod(sock, 0o777))
		defer os.Chmod(sock, 0o600)
		// The client sends a version line and prints what comes back.
		script := `import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
try:
  s.sendall(b"SSH-2.0-probe\r\n"); print(s.recv(64))
except Exception as e: print("error", e)`
		run := func(cred *syscall.Credential) string {
			cmd := exec.Command(py, "-c", script, sock)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			return string(out)
		}
		require.Contains(t, run(nil), "SSH-2.0", "the holder's own user gets its banner")
		other := run(&syscall.Credential{Uid: 65534, Gid: 65534})
		require.NotContains(t, other, "SSH-2.0", "another user gets nothing")
		require.Regexp(t, `b''|reset by peer|Broken pipe`, other, "the holder closed the connection")
	})
	n, _ := create(t)
	require.True(t, heldNow(n), "with everything in order the holder serves")

	t.Run("another key of the same user", func(t *testing.T) {
		// A process of the same user with another key can neither claim
		// the held connection by naming the key that made it, nor open
		// sessions on it without connecting.
		_, other := newKey(t)
		inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{other}, KnownHosts: kh, Persist: &Persist{Dir: dir}})
		cl, err := inv.hold.get(ctx)
		require.NoError(t, err)
		_, _, err = cl.OpenChannel(chanSession, []byte(n.Transport.(*Transport).conn.upstreamNow().(*heldConn).id))
		require.ErrorContains(t, err, "connect first")
		req, err := json.Marshal(connectRequest{Addr: m.addr(), Users: []string{"root"}, KnownHosts: kh, ConnectTimeout: 5 * time.Second,
			KeepAlive: time.Minute, MaxSessions: 8, Keys: keyStrings([]gossh.Signer{client})})
		require.NoError(t, err)
		ch, reqs, err := cl.OpenChannel(chanConnect, req)
		require.NoError(t, err)
		go gossh.DiscardRequests(reqs)
		var reply connectReply
		require.NoError(t, json.NewDecoder(ch).Decode(&reply))
		require.Contains(t, reply.Error, "does not hold the key")
		require.Empty(t, reply.ID)
	})
}
