package swarm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/examples/swarm/dockerapi"
)

func managers(reach ...string) []dockerapi.Node {
	var out []dockerapi.Node
	for i, r := range reach {
		name := string(rune('1' + i))
		out = append(out, dockerapi.Node{ID: "id" + name, Description: dockerapi.NodeDesc{Hostname: "m" + name},
			ManagerStatus: &dockerapi.ManagerStatus{Reachability: r}})
	}
	return append(out, dockerapi.Node{ID: "idw", Description: dockerapi.NodeDesc{Hostname: "w1"}})
}

func TestQuorum(t *testing.T) {
	R, U := dockerapi.Reachable, dockerapi.Unreachable
	for _, tc := range []struct {
		name   string
		nodes  []dockerapi.Node
		going  []string
		remove bool
		err    string
	}{
		{"a worker leaves", managers(R), []string{"idw"}, true, ""},
		{"the only manager restarts", managers(R), []string{"id1"}, false, ""},
		{"the only manager is removed", managers(R), []string{"id1"}, true,
			"refusing to x: it is the last manager of the swarm; a swarm needs at least one"},
		{"3 healthy, one restarts", managers(R, R, R), []string{"id2"}, false, ""},
		{"3 healthy, one removed", managers(R, R, R), []string{"id3"}, true, ""},
		{"3 healthy, two removed", managers(R, R, R), []string{"id2", "id3"}, true, ""},
		{"3 with one down, another restarts", managers(R, R, U), []string{"id2"}, false,
			"refusing to x: the swarm has 3 managers, 2 reachable (unreachable: m3); afterwards 1 of 3 would be reachable, fewer than the 2 a quorum needs: repair the unreachable managers first"},
		{"3 with one down, the down one removed", managers(R, R, U), []string{"id3"}, true, ""},
		{"3 with one down, a healthy one removed", managers(R, R, U), []string{"id2"}, true,
			"refusing to x: the swarm has 3 managers, 2 reachable (unreachable: m3); afterwards 1 of 2 would be reachable, fewer than the 2 a quorum needs: repair the unreachable managers first"},
		{"3 with one down, both healthy others removed", managers(U, R, R), []string{"id2", "id3"}, true,
			"refusing to x: the swarm has 3 managers, 2 reachable (unreachable: m1); afterwards 0 of 1 would be reachable, fewer than the 1 a quorum needs: repair the unreachable managers first"},
		{"5 with two down, one restarts", managers(R, R, R, U, U), []string{"id1"}, false,
			"refusing to x: the swarm has 5 managers, 3 reachable (unreachable: m4, m5); afterwards 2 of 5 would be reachable, fewer than the 3 a quorum needs: repair the unreachable managers first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := quorum(tc.nodes, tc.going, tc.remove, "x")
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
			var qe *QuorumError
			require.ErrorAs(t, err, &qe)
		})
	}
}

func TestOurs(t *testing.T) {
	mgr := func(label string) dockerapi.Info {
		return dockerapi.Info{Swarm: dockerapi.SwarmInfo{LocalNodeState: dockerapi.StateActive, ControlAvailable: true,
			Cluster: &dockerapi.ClusterInfo{ID: "c1", Spec: dockerapi.Spec{Labels: map[string]string{DeploymentLabel: label}}}}}
	}
	require.NoError(t, ours(mgr("swarm"), "swarm", "m1"))
	require.EqualError(t, ours(mgr("other"), "swarm", "m1"),
		`node m1 already manages swarm c1, which belongs to deployment "other", not to deployment "swarm": it is not initialised again; make it leave that swarm (docker swarm leave --force) or use another node`)
	require.ErrorContains(t, ours(mgr(""), "swarm", "m1"), "which belongs to no mason deployment")
	worker := dockerapi.Info{Swarm: dockerapi.SwarmInfo{LocalNodeState: dockerapi.StateActive, RemoteManagers: []dockerapi.Peer{{Addr: "10.0.0.9:2377"}}}}
	require.ErrorContains(t, ours(worker, "swarm", "m1"), "node m1 is already a worker of another swarm")
}

func TestDaemonConfigNamesOnlyTheNodesAddress(t *testing.T) {
	in := EngineIn{Labels: []string{"tier=web"}, LogMaxSize: "10m"}
	in.Cert.Value.Files.Cert, in.Cert.Value.Files.Key, in.Cert.Value.Files.CA = "/c", "/k", "/ca"
	b, err := daemonConfig("10.1.2.3", in)
	require.NoError(t, err)
	require.JSONEq(t, `{"hosts":["tcp://10.1.2.3:2376","unix:///run/docker.sock"],"tls":true,"tlsverify":true,
		"tlscacert":"/ca","tlscert":"/c","tlskey":"/k","labels":["tier=web"],"log-opts":{"max-size":"10m"}}`, string(b))
	in.Labels = nil
	b, err = daemonConfig("10.1.2.3", in)
	require.NoError(t, err)
	require.Contains(t, string(b), `"labels": []`)
}
