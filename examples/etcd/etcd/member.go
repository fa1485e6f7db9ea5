package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Member runs one etcd member on its node. Its input struct is its
// dependency list: its own certificate, every peer's URLs, and who founded
// the cluster.
type Member struct{}

// MemberIn is wired by the graph.
type MemberIn struct {
	Cert      role.Same[MemberCertOut]
	Peers     role.All[PeerURLOut]
	Bootstrap role.One[BootstrapOut]
	Binary    string `attr:"etcd.binary"`
}

// MemberOut is a running member.
type MemberOut struct {
	Name      string
	ClientURL string
	PeerURL   string
	// Joined is "new" for founding members and "existing" for members
	// added to the running cluster with member-add.
	Joined string
	// Cluster is every member's client URL at this run: where Undo
	// reaches the cluster to remove this member.
	Cluster []string
}

// Meta implements role.Role.
func (Member) Meta() role.Meta {
	return role.Meta{Name: "etcd-member", Version: "3.4", Doc: "configures and runs an etcd member",
		Retry: role.Retry{MaxAttempts: 3, Initial: time.Second}}
}

// Run implements role.Role. It is idempotent: a member that is already
// running is left alone (changes to the peer list matter only when a member
// first starts), a member that stopped is started again with its data, and
// a new member starts a new cluster or joins the running one.
func (Member) Run(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
	node := rc.Node()
	self, ok := peerOf(in.Peers, node.Name)
	if !ok {
		return MemberOut{}, fmt.Errorf("node %s is not among the peers %v", node.Name, in.Peers.Nodes())
	}
	founders := in.Bootstrap.Value.Founders
	out := MemberOut{Name: node.Name, ClientURL: self.ClientURL, PeerURL: self.PeerURL, Joined: "new"}
	for _, p := range in.Peers {
		out.Cluster = append(out.Cluster, p.Value.ClientURL)
	}
	if !slices.Contains(founders, node.Name) {
		out.Joined = "existing"
	}

	// The WAL directory appears only once etcd has started as a member
	// (it is created by renaming a finished temporary directory); a start
	// that failed on its configuration may leave member/ behind without
	// it, and that node joins again rather than reusing a bad config.
	bootstrapped, err := exists(ctx, node, DataDir+"/member/wal")
	if err != nil {
		return MemberOut{}, err
	}
	if bootstrapped {
		// Installing the unit again starts a member that
		// stopped and leaves a running one alone.
		return out, start(ctx, rc, in.Binary, self)
	}

	var cluster []string
	state := "new"
	if out.Joined == "new" {
		for _, p := range in.Peers {
			if slices.Contains(founders, p.Node) {
				cluster = append(cluster, p.Node+"="+p.Value.PeerURL)
			}
		}
	} else {
		state = "existing"
		if cluster, err = memberAdd(ctx, rc, in.Peers, founders, self); err != nil {
			return MemberOut{}, err
		}
	}
	cfg := config(self, strings.Join(cluster, ","), state, in.Bootstrap.Value.Token, in.Cert.Value)
	if err := rc.WriteFile(ctx, ConfigFile, []byte(cfg), 0o644); err != nil {
		return MemberOut{}, err
	}
	rc.Log().Info("starting etcd", "initial_cluster_state", state, "initial_cluster", strings.Join(cluster, ","))
	return out, start(ctx, rc, in.Binary, self)
}

// Check reports drift when the member's unit does not run.
func (Member) Check(ctx context.Context, rc *role.Context, _ MemberIn, _ MemberOut) (string, error) {
	units, err := provider.UnitsOf(rc.Node())
	if err != nil {
		return "", err
	}
	st, err := units.UnitStatus(ctx, UnitName)
	if err != nil {
		return "", err
	}
	if !st.Running() {
		rc.Log().Info("etcd unit is not running", "status", st.String())
		return "etcd is not running on " + rc.Node().Name, nil
	}
	return "", nil
}

func peerOf(peers role.All[PeerURLOut], node string) (PeerURLOut, bool) {
	for _, p := range peers {
		if p.Node == node {
			return p.Value, true
		}
	}
	return PeerURLOut{}, false
}

// memberAdd announces self to the running cluster (unless it is already
// announced) and returns the initial-cluster list self must start with.
func memberAdd(ctx context.Context, rc *role.Context, peers role.All[PeerURLOut], founders []string, self PeerURLOut) ([]string, error) {
	tlsCfg, err := controllerTLS(ctx, rc)
	if err != nil {
		return nil, err
	}
	var endpoints []string
	names := map[string]string{} // peer URL → node name
	for _, p := range peers {
		names[p.Value.PeerURL] = p.Node
		if slices.Contains(founders, p.Node) {
			endpoints = append(endpoints, p.Value.ClientURL)
		}
	}
	cli, err := Dial(endpoints, tlsCfg)
	if err != nil {
		return nil, err
	}
	defer cli.Close()

	cctx, cancel := withTimeout(ctx)
	list, err := cli.MemberList(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("listing members of the running cluster at %v: %w", endpoints, err)
	}
	announced := false
	for _, m := range list.Members {
		announced = announced || slices.Contains(m.PeerURLs, self.PeerURL)
	}
	if !announced {
		// etcd refuses a member-add ("unhealthy cluster") until every voting
		// member — including one added a moment ago by a concurrent join — has
		// been connected for a few seconds. Joins therefore take turns; wait
		// for ours rather than fail.
		wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(500*time.Millisecond),
			backoff.WithMaxInterval(3*time.Second), backoff.WithMaxElapsedTime(2*time.Minute)), ctx)
		err := backoff.Retry(func() error {
			cctx, cancel := withTimeout(ctx)
			defer cancel()
			resp, err := cli.MemberAdd(cctx, []string{self.PeerURL})
			if err == nil {
				// The response's member list is the one the leader applied
				// with this member in it; a MemberList read afterwards may be
				// served by a member that has not applied it yet (etcd 3.4
				// does not make it linearizable), which would start this
				// member without itself in its initial cluster.
				list.Members = resp.Members
			}
			if err != nil && strings.Contains(err.Error(), "unhealthy cluster") {
				rc.Log().Info("member-add postponed: the cluster is still settling", "peer_url", self.PeerURL)
				rc.Progress("waiting for its turn to join: the cluster is still settling")
				return err
			}
			if err != nil {
				return backoff.Permanent(err)
			}
			return nil
		}, wait)
		if err != nil {
			return nil, fmt.Errorf("member-add %s: %w", self.PeerURL, err)
		}
		rc.Log().Info("member-add done", "peer_url", self.PeerURL)
	}
	var cluster []string
	for _, m := range list.Members {
		for _, u := range m.PeerURLs {
			name := m.Name
			if n, ok := names[u]; ok {
				name = n // members added but not started yet have no name
			}
			if name == "" {
				return nil, fmt.Errorf("cluster member %x (%s) is not part of this deployment; remove it with etcdctl member remove", m.ID, u)
			}
			cluster = append(cluster, name+"="+u)
		}
	}
	slices.Sort(cluster)
	return cluster, nil
}

func config(self PeerURLOut, cluster, state, token string, cert MemberCertOut) string {
	tls := fmt.Sprintf(`  cert-file: %s
  key-file: %s
  trusted-ca-file: %s
  client-cert-auth: true
`, cert.Files.Cert, cert.Files.Key, cert.Files.CA)
	return fmt.Sprintf(`# written by mason (examples/etcd); changes are overwritten
name: %s
data-dir: %s
listen-peer-urls: %s
listen-client-urls: %s
initial-advertise-peer-urls: %s
advertise-client-urls: %s
initial-cluster: %s
initial-cluster-state: %s
initial-cluster-token: %s
client-transport-security:
%speer-transport-security:
%s`, self.Name, DataDir, self.PeerURL, self.ClientURL, self.PeerURL, self.ClientURL, cluster, state, token, tls, tls)
}

// UnitName is the unit that runs a member on its node.
const UnitName = "etcd"

// memberUnit is the member's unit: the file an operator would install as
// /etc/systemd/system/etcd.service. Everything else is in ConfigFile.
//
// It is not restarted by its supervisor: a member whose process died is
// repaired by the next plan, whose drift check (Check) reports it and
// re-runs the role (the end-to-end test kills one to show it). A
// deployment that wants the supervisor to restart it sets
// RestartOnFailure instead; the drift check then only sees members that
// failed for good.
func memberUnit(binary string) provider.Unit {
	return provider.Unit{
		Name:          UnitName,
		Description:   "etcd member (deployed by mason's etcd example)",
		Documentation: "https://etcd.io/docs/",
		Command:       []string{binary, "--config-file", ConfigFile},
		Restart:       provider.RestartNever,
	}
}

// start installs and starts the member's unit (a running member with an
// unchanged unit is left alone) and waits until it accepts connections.
func start(ctx context.Context, rc *role.Context, binary string, self PeerURLOut) error {
	units, err := provider.UnitsOf(rc.Node())
	if err != nil {
		return err
	}
	if _, err := rc.Exec(ctx, "mkdir", "-p", DataDir); err != nil {
		return err
	}
	change, err := units.InstallUnit(ctx, memberUnit(binary))
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	if change != provider.UnitUnchanged {
		rc.Log().Info("etcd unit "+string(change), "unit", UnitName)
	}
	host := strings.TrimPrefix(self.ClientURL, "https://")
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(30*time.Second)), ctx)
	err = backoff.Retry(func() error {
		st, err := units.UnitStatus(ctx, UnitName)
		if err != nil {
			return err
		}
		if !st.Running() {
			logs, _ := units.UnitLogs(ctx, UnitName, 8)
			return backoff.Permanent(fmt.Errorf("etcd exited at start (%s); its last lines:\n%s", st, strings.TrimSpace(logs)))
		}
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", host)
		if err != nil {
			return fmt.Errorf("etcd on %s does not accept connections yet: %w", host, err)
		}
		// For scripts and operators that look for a PID file.
		return errors.Join(c.Close(), rc.WriteFile(ctx, PIDFile, []byte(strconv.Itoa(st.MainPID)+"\n"), 0o644))
	}, wait)
	return err
}

func exists(ctx context.Context, n *provider.Node, path string) (bool, error) {
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"test", "-e", path}})
	if err != nil {
		return false, err
	}
	return res.ExitCode == 0, nil
}

var errNotHealthy = errors.New("etcd cluster is not healthy yet")
