package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/masonops/mason/cli"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

const labChildEnv = "MASON_CLI_TEST_LAB_CHILD"

// HostOut is what the lab test's role reads on each node.
type HostOut struct{ Hostname string }

// labRegistry runs a role on real lab nodes; with block set, the role on
// n2 writes the file block names and waits (the parent kills the process).
func labRegistry(block string) *spec.Registry {
	reg := spec.NewRegistry()
	err := reg.Roles(role.Of(role.Func(role.Meta{Name: "hostname", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (HostOut, error) {
			out, err := rc.Exec(ctx, "hostname")
			if err != nil {
				return HostOut{}, err
			}
			if block != "" && rc.Node().Name == "n2" {
				if err := os.WriteFile(block, nil, 0o644); err != nil {
					return HostOut{}, err
				}
				<-ctx.Done()
			}
			return HostOut{Hostname: strings.TrimSpace(string(out))}, nil
		})))
	if err != nil {
		panic(err)
	}
	reg.Provider("lab", func(ctx context.Context, s spec.Settings) (*provider.Provider, error) {
		l, err := lab.Open(ctx, lab.Options{Name: s.String("name", ""), Dir: s.String("dir", "")})
		if err != nil {
			return nil, err
		}
		return l.Provider(), nil
	})
	return reg
}

func labChild(childtest.T) {
	args := strings.Split(os.Getenv(labChildEnv), "\x1f")
	os.Exit(cli.Run(context.Background(), cli.App{Name: "prov", Registry: labRegistry(os.Getenv("MASON_CLI_TEST_BLOCK"))}, args, nil))
}

// labLeftovers lists what of a lab is still on this machine: its bridge,
// FORWARD rule, directory, and every node's namespace, veth, init process
// and mounts.
func labLeftovers(t *testing.T, dir, bridge string, infos []*lab.NodeInfo) []string {
	t.Helper()
	var left []string
	if exec.Command("ip", "link", "show", bridge).Run() == nil {
		left = append(left, "bridge "+bridge)
	}
	fw, _ := exec.Command("iptables", "-S", "FORWARD").CombinedOutput()
	if strings.Contains(string(fw), bridge) {
		left = append(left, "FORWARD rule for "+bridge)
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	for _, info := range infos {
		if _, err := os.Stat(info.NetNS); err == nil {
			left = append(left, "netns "+info.NetNS)
		}
		if exec.Command("ip", "link", "show", info.HostVeth).Run() == nil {
			left = append(left, "veth "+info.HostVeth)
		}
		if syscall.Kill(info.PID, 0) == nil {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", info.PID)); err == nil && !strings.Contains(string(b), ") Z ") {
				left = append(left, fmt.Sprintf("process %d", info.PID))
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		left = append(left, "mount under "+dir)
	}
	ps, _ := exec.Command("ps", "-eo", "args").Output()
	if strings.Contains(string(ps), dir) {
		left = append(left, "process with "+dir+" in its command line")
	}
	return left
}

// destroy through the front end leaves nothing of the lab on the machine:
// after an apply, after a bare plan, after an apply that was killed, and
// when a node was already gone.
func TestDestroyLeavesNothingOfTheLab(t *testing.T) {
	if err := lab.Check(); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("lab nodes cannot run here: " + err.Error())
		}
		t.Fatal(err)
	}
	for _, tc := range []string{"apply", "bare plan", "killed apply", "node already gone"} {
		t.Run(tc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			tmp := t.TempDir()
			labDir := filepath.Join(tmp, "lab")
			name := fmt.Sprintf("front-d%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
			specFile := filepath.Join(tmp, "lab.hcl")
			require.NoError(t, os.WriteFile(specFile, []byte(fmt.Sprintf(`deployment = "labtest"
provider "lab" {
  name = %q
  dir  = %q
}
pool "web" {
  nodes = ["n1", "n2", "n3"]
}
role "hostname" {
  on = [pool.web]
}
`, name, labDir)), 0o644))
			state := filepath.Join(tmp, "lab.state")
			run := func(args ...string) (int, string) {
				var out bytes.Buffer
				code := cli.Run(ctx, cli.App{Name: "prov", Registry: labRegistry(""), Stdout: &out, Stderr: &out},
					append(args, "-spec", specFile, "-state", state), nil)
				return code, out.String()
			}
			t.Cleanup(func() {
				if l, err := lab.Open(context.Background(), lab.Options{Name: name, Dir: labDir}); err == nil {
					_ = l.Teardown(context.Background())
				}
			})

			switch tc {
			case "apply", "node already gone":
				code, out := run("apply")
				require.Equal(t, cli.ExitOK, code, out)
			case "bare plan":
				code, out := run("plan")
				require.Equal(t, cli.ExitOK, code, out)
			case "killed apply":
				// The nodes' inits outlive the killed child: become their
				// reaper, as this machine's PID 1 reaps nothing.
				require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
				t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
				block := filepath.Join(tmp, "blocked")
				child := exec.Command(os.Args[0])
				child.Env = append(os.Environ(), labChildEnv+"="+strings.Join([]string{"apply", "-spec", specFile, "-state", state}, "\x1f"), "MASON_CLI_TEST_BLOCK="+block)
				var childOut bytes.Buffer
				child.Stdout, child.Stderr = &childOut, &childOut
				require.NoError(t, child.Start())
				for {
					if _, err := os.Stat(block); err == nil {
						break
					}
					if ctx.Err() != nil {
						_ = child.Process.Kill()
						_ = child.Wait() // childOut is the child's until then
						t.Fatalf("the child never reached the blocking role: %s", childOut.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
				require.NoError(t, child.Process.Signal(syscall.SIGKILL))
				_ = child.Wait()
			}

			l, err := lab.Open(ctx, lab.Options{Name: name, Dir: labDir})
			require.NoError(t, err)
			bridge := l.Bridge()
			nodes, err := l.Provider().List(ctx)
			require.NoError(t, err)
			var infos []*lab.NodeInfo
			for _, n := range nodes {
				var info *lab.NodeInfo
				require.True(t, n.As(&info))
				infos = append(infos, info)
			}
			if tc == "bare plan" {
				require.Empty(t, nodes)
			} else {
				require.Len(t, infos, 3)
			}
			if tc == "node already gone" {
				require.NoError(t, l.Delete(ctx, nodes[1].ID))
			}

			require.NotEmpty(t, labLeftovers(t, labDir, bridge, infos), "before destroy the lab is there")
			code, out := run("destroy", "-yes")
			require.Equal(t, cli.ExitOK, code, out)
			for _, info := range infos {
				var ws unix.WaitStatus
				_, _ = unix.Wait4(info.PID, &ws, unix.WNOHANG, nil) // reap an orphaned init we adopted
			}
			require.Contains(t, out, "destroyed labtest")
			require.Contains(t, out, "removed what provider lab made for the deployment")
			require.Empty(t, labLeftovers(t, labDir, bridge, infos), "after destroy: %s", out)

			// And the state forgot the deployment: a plan starts afresh.
			code, out = run("status")
			require.Equal(t, cli.ExitOK, code, out)
			require.Contains(t, out, "labtest: 3 never run")
			code, out = run("destroy", "-yes") // status opened the lab again: destroy is repeatable
			require.Equal(t, cli.ExitOK, code, out)
		})
	}
}
