package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
)

// children are the child processes the tests run the test binary as.
var children = map[string]func(childtest.T){}

func TestMain(m *testing.M) {
	childtest.Dispatch(children)
	// The service node runs this test binary as its network services
	// daemon (`BINARY netsvcd ARGS`), as it runs the example's program.
	if len(os.Args) > 1 && os.Args[1] == "netsvcd" {
		if err := swarm.ServeNetsvcd(context.Background(), os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// needs skips outside CI when this machine cannot run the example, and
// fails in CI, where make test has installed everything.
func needs(t *testing.T) {
	t.Helper()
	err := swarm.Check()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skip("cannot run the swarm example here: " + err.Error())
	}
	t.Fatal("CI must be able to run the swarm example: " + err.Error())
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of roles.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is a config for a lab of the test's own, torn down at the
// end even when the test fails.
func testConfig(t *testing.T, name string, managers, workers int) (swarm.Config, *syncBuffer, *syncBuffer) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	out, logs := &syncBuffer{}, &syncBuffer{}
	cfg := swarm.Config{
		Lab:      fmt.Sprintf("%s-%d", name, os.Getpid()),
		LabDir:   filepath.Join(t.TempDir(), "lab"),
		StateDir: filepath.Join(t.TempDir(), "state"),
		Managers: managers, Workers: workers,
		Netsvcd: exe,
		Out:     out, Log: logs,
	}
	t.Cleanup(func() {
		_ = swarm.Destroy(context.Background(), cfg)
		if t.Failed() {
			t.Logf("example output:\n%s\nrole logs:\n%s", out.String(), logs.String())
		}
	})
	return cfg, out, logs
}

// operator returns an Engine API client with the operator's certificate
// (the files written for DOCKER_CERT_PATH).
func operator(t *testing.T, s *swarm.Summary, n *provider.Node) *dockerapi.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.OperatorDir, "cert.pem"), filepath.Join(s.OperatorDir, "key.pem"))
	require.NoError(t, err)
	ca, err := os.ReadFile(filepath.Join(s.OperatorDir, "ca.pem"))
	require.NoError(t, err)
	cfg, err := swarm.ClientTLS(cert, ca)
	require.NoError(t, err)
	c := dockerapi.New(n.InterfaceAddr.String(), cfg)
	t.Cleanup(c.Close)
	return c
}

// swarmNodes returns "hostname status availability role" for every node
// the swarm lists, sorted.
func swarmNodes(t *testing.T, ctx context.Context, c *dockerapi.Client) []string {
	t.Helper()
	ns, err := c.Nodes(ctx)
	require.NoError(t, err)
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s %s %s %s", n.Description.Hostname, n.Status.State, n.Spec.Availability, n.Spec.Role))
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// ran returns the node-roles a plan runs, with their reasons.
func ran(p *graph.Plan) map[string]string {
	out := map[string]string{}
	for _, s := range p.Steps {
		if s.Action != graph.ActionSkip {
			out[s.ID] = s.Action.String() + ": " + s.Reason
		}
	}
	return out
}

func succeeded(r *graph.Result) []string {
	var out []string
	for _, o := range r.Outcomes {
		if o.State == graph.StateSucceeded {
			out = append(out, o.ID)
		}
	}
	sortStrings(out)
	return out
}

// labTrace is what a lab holds on the host, to check it is gone.
type labTrace struct {
	bridge, dir string
	infos       []*lab.NodeInfo
	// procs are the processes in the nodes' PID namespaces (dockerd,
	// containerd, the demo's containers, netsvcd), by PID and start time.
	procs map[int]string
}

// procsInNamespaces returns every process whose PID namespace is one of
// the inits', with its start time (field 22 of /proc/PID/stat).
func procsInNamespaces(t *testing.T, inits []int) map[int]string {
	t.Helper()
	ns := map[string]bool{}
	for _, pid := range inits {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		require.NoError(t, err)
		ns[l] = true
	}
	out := map[int]string{}
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		if err != nil || !ns[l] {
			continue
		}
		if st := startTime(pid); st != "" {
			out[pid] = st
		}
	}
	return out
}

func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func traceLab(t *testing.T, ctx context.Context, cfg swarm.Config) labTrace {
	t.Helper()
	l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
	require.NoError(t, err)
	nodes, err := l.Provider().List(ctx)
	require.NoError(t, err)
	tr := labTrace{bridge: l.Bridge(), dir: l.Dir()}
	var inits []int
	for _, n := range nodes {
		var info *lab.NodeInfo
		require.True(t, n.As(&info))
		tr.infos = append(tr.infos, info)
		inits = append(inits, info.PID)
	}
	tr.procs = procsInNamespaces(t, inits)
	return tr
}

// requireGone checks that nothing of the lab is left on the host: no
// namespace, bridge, veth, process, mount, firewall rule or state.
func requireGone(t *testing.T, tr labTrace, cfg swarm.Config) {
	t.Helper()
	require.Error(t, exec.Command("ip", "link", "show", tr.bridge).Run(), "bridge %s is gone", tr.bridge)
	for _, info := range tr.infos {
		_, err := os.Stat(info.NetNS)
		require.True(t, os.IsNotExist(err), "netns %s is gone", info.NetNS)
		require.Error(t, exec.Command("ip", "link", "show", info.HostVeth).Run(), "veth %s is gone", info.HostVeth)
		require.ErrorIs(t, syscall.Kill(info.PID, 0), syscall.ESRCH, "node init %d is gone", info.PID)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	require.NotContains(t, string(mounts), tr.dir, "no mount under the lab's directory")
	fw, _ := exec.Command("iptables", "-S", "FORWARD").CombinedOutput()
	require.NotContains(t, string(fw), tr.bridge, "no firewall rule for the bridge")
	ps, _ := exec.Command("ps", "-eo", "args").Output()
	require.NotContains(t, string(ps), tr.dir, "no process of the lab")
	for pid, st := range tr.procs {
		require.NotEqual(t, st, startTime(pid), "process %d of a node is gone", pid)
	}
	_, err = os.Stat(cfg.StateDir)
	require.True(t, os.IsNotExist(err), "state directory %s is gone", cfg.StateDir)
	_, err = os.Stat(tr.dir)
	require.True(t, os.IsNotExist(err), "lab directory %s is gone", tr.dir)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
