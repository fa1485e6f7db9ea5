package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

// TestDockerSwarmAcrossNodes checks the fidelity the lab promises: a real
// dockerd with default paths (/etc/docker, /var/lib/docker, /run/docker)
// runs in each node without colliding, and two nodes form a real Swarm
// over the lab bridge.
func TestDockerSwarmAcrossNodes(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("dockerd"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("dockerd missing: install Debian package docker.io to run this test")
		}
		t.Fatal("dockerd missing: install Debian package docker.io")
	}
	l := openLab(t, Options{})
	p := l.Provider()
	ctx := ctxT(t, 4*time.Minute)

	var nodes []*provider.Node
	for i := range 2 {
		n, err := p.Create(ctx, provider.NodeSpec{ID: fmt.Sprintf("d%d", i), Name: fmt.Sprintf("docker-%d", i)})
		require.NoError(t, err)
		nodes = append(nodes, n)
		// Each node's own /etc/docker/daemon.json, default paths otherwise.
		require.NoError(t, n.Transport.Put(ctx, "/etc/docker/daemon.json",
			strings.NewReader(fmt.Sprintf(`{"labels": ["mason.node=%s"]}`, n.Name)), provider.FileOptions{}))
		runOK(t, ctx, n, "setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &")
	}
	for _, n := range nodes {
		ready := func() bool {
			res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"docker", "info", "--format", "{{.Name}} {{.Labels}} {{.DockerRootDir}}"}, Timeout: 10 * time.Second})
			return err == nil && res.ExitCode == 0 && string(res.Stdout) == fmt.Sprintf("%s [mason.node=%s] /var/lib/docker\n", n.Name, n.Name)
		}
		if !assertEventually(ready, 90*time.Second) {
			t.Fatalf("dockerd in %s did not come up:\n%s", n.Name, runOK(t, ctx, n, "tail -20 /var/log/dockerd.log"))
		}
	}

	mgr, wrk := nodes[0], nodes[1]
	runOK(t, ctx, mgr, "docker swarm init --advertise-addr "+mgr.InterfaceAddr.String())
	token := strings.TrimSpace(runOK(t, ctx, mgr, "docker swarm join-token -q worker"))
	runOK(t, ctx, wrk, fmt.Sprintf("docker swarm join --advertise-addr %s --token %s %s:2377", wrk.InterfaceAddr, token, mgr.InterfaceAddr))
	require.True(t, assertEventually(func() bool {
		out := runOK(t, ctx, mgr, "docker node ls --format '{{.Hostname}} {{.Status}}' | sort")
		return out == "docker-0 Ready\ndocker-1 Ready\n"
	}, 60*time.Second), "both nodes are Ready in the Swarm")
}

// assertEventually polls cond every 250ms until it holds or d passes.
func assertEventually(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(250 * time.Millisecond)
	}
	return false
}
