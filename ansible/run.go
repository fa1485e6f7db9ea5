package ansible

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

//go:embed plugins/connection/mason.py plugins/callback/mason.py
var plugins embed.FS

// play runs ansible-playbook once against rc's node and returns what the
// callback reported. A failed play is a *TaskError when a task failed.
func (p Playbook[In, Out]) play(ctx context.Context, rc *role.Context, in In, check bool) (*report, error) {
	n := rc.Node()
	name := p.name()
	if n == nil || n.Transport == nil {
		return nil, fmt.Errorf("ansible: %s: needs a node with a transport (bind it to a pool; it cannot be a service role)", name)
	}
	dir := p.absDir()
	playbook, roleDir, err := p.playbookPath(dir)
	if err != nil {
		return nil, fmt.Errorf("ansible: %s: %w", name, err)
	}
	command := p.Command
	if command == "" {
		command = "ansible-playbook"
	}
	if _, err := exec.LookPath(command); err != nil {
		return nil, fmt.Errorf("ansible: %s: %s not found: install Debian package ansible-core: %w", name, command, err)
	}
	vars, secrets, err := encodeVars(in)
	if err != nil {
		return nil, fmt.Errorf("ansible: %s: %w", name, err)
	}
	red := newRedactor(secrets)
	varsJSON, err := json.Marshal(vars)
	if err != nil {
		return nil, fmt.Errorf("ansible: %s: variables: %w", name, err)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	tmp, err := privateDir()
	if err != nil {
		return nil, fmt.Errorf("ansible: %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	if err := writePlugins(tmp); err != nil {
		return nil, fmt.Errorf("ansible: %s: %w", name, err)
	}
	if roleDir {
		playbook = filepath.Join(tmp, "play.yml")
		play := fmt.Sprintf("- hosts: all\n  gather_facts: true\n  roles:\n    - role: %q\n", dir)
		if err := os.WriteFile(playbook, []byte(play), 0o600); err != nil {
			return nil, fmt.Errorf("ansible: %s: %w", name, err)
		}
	}
	inventory := filepath.Join(tmp, "inventory.json")
	if err := writeInventory(inventory, n, p.Groups); err != nil {
		return nil, fmt.Errorf("ansible: %s: %w", name, err)
	}
	sock := filepath.Join(tmp, "node.sock")
	srv, err := serveNode(ctx, sock, n.Transport, rc.Log())
	if err != nil {
		return nil, fmt.Errorf("ansible: %s: %w", name, err)
	}
	defer srv.close()

	// Variables go through a pipe read by the callback (fd 3), the report
	// comes back through another (fd 4).
	varsR, varsW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer varsR.Close()
	evR, evW, err := os.Pipe()
	if err != nil {
		varsW.Close()
		return nil, err
	}
	defer evR.Close()

	args := []string{"-i", inventory, "-l", n.Name, playbook}
	if p.Become {
		args = append(args, "--become")
	}
	if check {
		args = append(args, "--check")
	}
	cmd := exec.CommandContext(ctx, command, args...)
	cmd.Dir = dir
	if roleDir {
		cmd.Dir = filepath.Dir(dir)
	}
	cmd.Env = append(baseEnv(), p.Env...)
	cmd.Env = append(cmd.Env,
		"ANSIBLE_CONNECTION_PLUGINS="+filepath.Join(tmp, "plugins", "connection"),
		"ANSIBLE_CALLBACK_PLUGINS="+filepath.Join(tmp, "plugins", "callback"),
		"ANSIBLE_STDOUT_CALLBACK=mason",
		"ANSIBLE_LOAD_CALLBACK_PLUGINS=False",
		"ANSIBLE_CALLBACKS_ENABLED=",
		"ANSIBLE_PIPELINING=True",
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "local"),
		"ANSIBLE_KEEP_REMOTE_FILES=False",
		"ANSIBLE_RETRY_FILES_ENABLED=False",
		"ANSIBLE_NOCOLOR=True",
		"ANSIBLE_FORCE_COLOR=False",
		"ANSIBLE_DEPRECATION_WARNINGS=False",
		"ANSIBLE_FACT_CACHING=memory",
		"MASON_ANSIBLE_SOCKET="+sock,
		"MASON_ANSIBLE_VARS_FD=3",
		"MASON_ANSIBLE_EVENTS_FD=4",
		"MASON_ANSIBLE_OUTPUTS="+strings.Join(outputNames(reflect.TypeFor[Out]()), ","),
	)
	cmd.ExtraFiles = []*os.File{varsR, evW}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	began := time.Now()
	if err := cmd.Start(); err != nil {
		varsW.Close()
		evW.Close()
		return nil, fmt.Errorf("ansible: %s: start %s: %w", name, command, err)
	}
	evW.Close()
	go func() {
		_, _ = varsW.Write(varsJSON)
		varsW.Close()
	}()
	var lines [][]byte
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(evR)
		sc.Buffer(make([]byte, 64*1024), 64<<20)
		for sc.Scan() {
			l := append([]byte(nil), sc.Bytes()...)
			lines = append(lines, l)
			logEvent(rc, l, red)
		}
	}()
	waitErr := cmd.Wait()
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		evR.Close() // something the play started still holds the pipe
		<-read
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("ansible: %s on %s: %w", name, n.Name, ctx.Err())
	}
	rep, err := parseEvents(lines, n.Name, red)
	if err != nil {
		return nil, fmt.Errorf("ansible: %s on %s: %w", name, n.Name, err)
	}
	rc.Log().Info("ansible recap", "playbook", filepath.Base(playbook), "check", check, "recap", rep.stats.String(), "took", time.Since(began).Round(time.Millisecond))
	if rep.failed != nil {
		rep.failed.Role = name
		return nil, rep.failed
	}
	if waitErr != nil {
		tail := strings.TrimSpace(red.String(out.String()))
		if len(tail) > 2000 {
			tail = "…" + tail[len(tail)-2000:]
		}
		return nil, fmt.Errorf("ansible: %s on %s: ansible-playbook failed (%v): %s", name, n.Name, waitErr, tail)
	}
	return rep, nil
}

// playbookPath returns the playbook to run, or reports that dir is a role.
func (p Playbook[In, Out]) playbookPath(dir string) (string, bool, error) {
	if p.Dir == "" {
		return "", false, errors.New("Playbook.Dir is empty: name the playbook's directory")
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", false, fmt.Errorf("playbook directory: %w", err)
	}
	if !st.IsDir() {
		return "", false, fmt.Errorf("playbook directory %s is not a directory (put the playbook's file name in File)", dir)
	}
	if p.File != "" {
		path := filepath.Join(dir, p.File)
		if _, err := os.Stat(path); err != nil {
			return "", false, fmt.Errorf("playbook: %w", err)
		}
		return path, false, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "site.yml")); err == nil {
		return filepath.Join(dir, "site.yml"), false, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "tasks", "main.yml")); err == nil {
		return "", true, nil
	}
	return "", false, fmt.Errorf("%s has neither site.yml nor tasks/main.yml: set File to the playbook", dir)
}

// privateDir makes a directory only we can read, on tmpfs where there is
// one, so Ansible's local temporary files never reach a disk.
func privateDir() (string, error) {
	base := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "mason-ansible-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o700)
}

func writePlugins(tmp string) error {
	for _, f := range []string{"plugins/connection/mason.py", "plugins/callback/mason.py"} {
		b, err := plugins.ReadFile(f)
		if err != nil {
			return err
		}
		path := filepath.Join(tmp, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(tmp, "local"), 0o700)
}

// writeInventory writes a one-host inventory: the node, reached through
// our connection plugin, in "all", its own group and groups.
func writeInventory(path string, n *provider.Node, groups []string) error {
	hostVars := map[string]any{
		"ansible_connection":         "mason",
		"ansible_python_interpreter": "auto_silent",
	}
	if n.InterfaceAddr.IsValid() {
		hostVars["ansible_host"] = n.InterfaceAddr.String()
	}
	if n.Login.User != "" {
		hostVars["ansible_user"] = n.Login.User
	}
	inv := map[string]any{
		"all": map[string]any{"hosts": map[string]any{n.Name: hostVars}},
	}
	children := map[string]any{}
	for _, g := range groups {
		if g == "all" || g == n.Name {
			continue
		}
		children[g] = map[string]any{"hosts": map[string]any{n.Name: nil}}
	}
	if len(children) > 0 {
		inv["all"].(map[string]any)["children"] = children
	}
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// baseEnv is the environment ansible-playbook starts from: enough to find
// programs and a home, nothing else of the controller's (which may hold
// credentials).
func baseEnv() []string {
	env := []string{"LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
	for _, k := range []string{"PATH", "HOME", "USER", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// logEvent logs one task result, secrets redacted.
func logEvent(rc *role.Context, line []byte, red redactor) {
	var ev event
	if json.Unmarshal(line, &ev) != nil || ev.Event != "task" {
		return
	}
	attrs := []any{"task", ev.Task, "status", ev.Status}
	if ev.Status == "failed" || ev.Status == "unreachable" {
		attrs = append(attrs, "msg", red.String(fmt.Sprint(ev.Msg)))
		if ev.Ignored {
			attrs = append(attrs, "ignored", true)
		}
	}
	rc.Log().Info("ansible task", attrs...)
}

// nodeServer answers the connection plugin: commands and files, run on
// the node through its transport.
type nodeServer struct {
	l    interface{ Close() error }
	wg   sync.WaitGroup
	stop context.CancelFunc
}

func (s *nodeServer) close() {
	s.stop()
	s.l.Close()
	s.wg.Wait()
}

// request is one call of the connection plugin.
type request struct {
	Op    string  `json:"op"`
	Cmd   string  `json:"cmd"`
	Stdin *[]byte `json:"stdin"`
	Path  string  `json:"path"`
	Data  []byte  `json:"data"`
}

type response struct {
	RC      int    `json:"rc"`
	Stdout  []byte `json:"stdout,omitempty"`
	Stderr  []byte `json:"stderr,omitempty"`
	Data    []byte `json:"data,omitempty"`
	Error   string `json:"error,omitempty"`
	Missing bool   `json:"missing,omitempty"`
}

func handle(ctx context.Context, t provider.Transport, req request) response {
	switch req.Op {
	case "exec":
		cmd := provider.Command{Args: []string{"/bin/sh", "-c", req.Cmd}}
		if req.Stdin != nil {
			cmd.Stdin = bytes.NewReader(*req.Stdin)
		}
		res, err := t.Run(ctx, cmd)
		if err != nil {
			return response{Error: err.Error()}
		}
		return response{RC: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr}
	case "put":
		if err := t.Put(ctx, req.Path, bytes.NewReader(req.Data), provider.FileOptions{Mode: 0o600}); err != nil {
			return response{Error: err.Error()}
		}
		return response{}
	case "get":
		b, err := t.Get(ctx, req.Path)
		if err != nil {
			return response{Error: err.Error(), Missing: errors.Is(err, os.ErrNotExist)}
		}
		return response{Data: b}
	}
	return response{Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

func serveConn(ctx context.Context, c io.ReadWriteCloser, t provider.Transport, log *slog.Logger) {
	defer c.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(c, 1<<16))
	enc := json.NewEncoder(c)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return
		}
		began := time.Now()
		resp := handle(ctx, t, req)
		log.Debug("ansible connection", "op", req.Op, "path", req.Path, "rc", resp.RC, "error", resp.Error, "took", time.Since(began))
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// serveNode listens on the Unix socket path and serves the connection
// plugin until close.
func serveNode(ctx context.Context, path string, t provider.Transport, log *slog.Logger) (*nodeServer, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	s := &nodeServer{l: l, stop: stop}
	var conns sync.WaitGroup
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer conns.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				// Closing the listener does not end open connections: end
				// them when the run ends.
				stopped := context.AfterFunc(ctx, func() { c.Close() })
				defer stopped()
				serveConn(ctx, c, t, log)
			}()
		}
	}()
	return s, nil
}
