package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/netsvc/daemon"
	daemonclient "github.com/masonops/mason/netsvc/daemon/client"
	"github.com/masonops/mason/pki"
)

// netsvcEnv marks a process started to serve the network services: the
// program's own binary, so `go run` needs no second program.
const netsvcEnv = "MASON_KUBE_NETSVCD"

// ServeNetsvcIfChild runs the network-services daemon and exits when this
// process was started as one by Up; otherwise it returns at once. Call it
// first thing in main (and in TestMain).
func ServeNetsvcIfChild() {
	if os.Getenv(netsvcEnv) == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := daemon.Main(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// netsvcPaths are the daemon's files in the state directory.
type netsvcPaths struct{ dir string }

func (p netsvcPaths) bin() string   { return filepath.Join(p.dir, "mason-kube-netsvcd") }
func (p netsvcPaths) state() string { return filepath.Join(p.dir, "netsvc.db") }
func (p netsvcPaths) pid() string   { return filepath.Join(p.dir, "pid") }
func (p netsvcPaths) log() string   { return filepath.Join(p.dir, "netsvcd.log") }
func (p netsvcPaths) ready() string { return filepath.Join(p.dir, "ready.json") }

// netsvcAPIPort is the daemon's API port on the lab gateway.
const netsvcAPIPort = 8853

// ensureNetsvc starts the daemon that serves DNS (for the API's name) and
// the API load balancer on the lab's gateway address, unless it runs
// already, and returns a client of it. The daemon outlives this process, so
// kubectl keeps working after `go run` exits.
func ensureNetsvc(ctx context.Context, mgr *pki.Manager, stateDir string, gw netip.Addr, zone string, log io.Writer) (*daemonclient.Client, error) {
	p := netsvcPaths{dir: filepath.Join(stateDir, "netsvc")}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	srv, err := mgr.Issue(ctx, netsvcCA, pki.Request{Kind: pki.Server, Identity: pki.Identity{Name: "netsvcd", IPs: []netip.Addr{gw}}, Profile: leafProfile})
	if err != nil {
		return nil, err
	}
	files := pki.FilesIn(p.dir, "netsvcd")
	if err := installLocal(srv, files); err != nil {
		return nil, err
	}
	cli, err := mgr.Issue(ctx, netsvcCA, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "mason-controller"}, Profile: leafProfile})
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cli.ClientTLS(gw.String())
	if err != nil {
		return nil, err
	}
	api := net.JoinHostPort(gw.String(), strconv.Itoa(netsvcAPIPort))
	client := daemonclient.New(api, tlsCfg)
	if pid, ok := netsvcRunning(p); ok {
		if _, err := client.Records(ctx, zone); err == nil {
			return client, nil
		}
		// Running but not answering for our zone (a half-started daemon):
		// replace it.
		_ = stopPID(pid, 5*time.Second)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// A copy of this binary: `go run` deletes its own after exiting, and a
	// restart must find the daemon's program.
	if err := copyFile(self, p.bin()); err != nil {
		return nil, err
	}
	_ = os.Remove(p.ready())
	logf, err := os.OpenFile(p.log(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(p.bin(), "-state", p.state(), "-api", api, "-dns", net.JoinHostPort(gw.String(), "53"), "-zone", zone,
		"-cert", files.Cert, "-key", files.Key, "-ca", files.CA, "-ready-file", p.ready())
	cmd.Env = append(os.Environ(), netsvcEnv+"=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the network services daemon: %w", err)
	}
	if err := os.WriteFile(p.pid(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait() }() // reap it if it dies while we run
	fmt.Fprintf(log, "network services: started daemon pid %d (API %s, DNS %s:53, log %s)\n", cmd.Process.Pid, api, gw, p.log())
	err = retry(ctx, 20*time.Second, func() error {
		if _, err := os.Stat(p.ready()); err != nil {
			if _, alive := netsvcRunning(p); !alive {
				b, _ := os.ReadFile(p.log())
				return fmt.Errorf("network services daemon exited: %s", tailLines(string(b), 8))
			}
			return err
		}
		_, err := client.Records(ctx, zone)
		return err
	})
	if err != nil {
		return nil, err
	}
	return client, nil
}

const netsvcCA = "kube-netsvc"

// netsvcRunning finds the daemon from its PID file, checking that the
// process is the daemon of this state directory (a PID may be reused).
func netsvcRunning(p netsvcPaths) (int, bool) {
	b, err := os.ReadFile(p.pid())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), p.state()) {
		return 0, false
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
		return 0, false
	}
	return pid, true
}

func stopNetsvc(stateDir string) error {
	p := netsvcPaths{dir: filepath.Join(stateDir, "netsvc")}
	if pid, ok := netsvcRunning(p); ok {
		return stopPID(pid, 10*time.Second)
	}
	return nil
}

func stopPID(pid int, wait time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return nil // exited; its parent (maybe gone) reaps it
		}
		time.Sleep(50 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

func installLocal(b pki.Bundle, f pki.Files) error {
	for _, x := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{f.Cert, b.CertPEM, 0o644}, {f.Key, b.KeyPEM.Reveal(), 0o600}, {f.CA, b.CAPEM, 0o644}} {
		if err := deploy.WriteFile(x.path, x.data, x.mode); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".bin-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
