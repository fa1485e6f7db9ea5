package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/masonops/mason/examples/etcd/etcd"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

// needs skips outside CI when this machine cannot run the example, and
// fails in CI, where make test has installed everything.
func needs(t *testing.T) {
	t.Helper()
	var why []string
	if os.Geteuid() != 0 {
		why = append(why, "lab nodes need root")
	}
	if err := lab.Check(); err != nil {
		why = append(why, err.Error())
	}
	if _, err := os.Stat("/usr/bin/etcd"); err != nil {
		why = append(why, "/usr/bin/etcd missing (apt-get install etcd-server)")
	}
	if len(why) == 0 {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skip("cannot run the etcd example here: " + strings.Join(why, "; "))
	}
	t.Fatal("CI must be able to run the etcd example: " + strings.Join(why, "; "))
}

func TestEndToEnd(t *testing.T) {
	needs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	var log bytes.Buffer
	cfg := etcd.Config{
		Lab:      fmt.Sprintf("e2e-etcd-%d", os.Getpid()),
		LabDir:   filepath.Join(t.TempDir(), "lab"),
		StateDir: filepath.Join(t.TempDir(), "state"),
		Members:  3,
		Out:      &log,
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_ = etcd.Destroy(context.Background(), cfg)
		}
		if t.Failed() {
			t.Logf("example output:\n%s", log.String())
		}
	})

	// Deploy three members; Up itself writes and reads with the operator's
	// certificate and fails otherwise.
	s, err := etcd.Up(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, 13, s.Result.Count(graph.StateSucceeded))
	require.Len(t, s.Endpoints, 3)
	require.NotEmpty(t, s.Wrote)

	operator, err := tls.LoadX509KeyPair(s.Operator.CertFile, s.Operator.KeyFile)
	require.NoError(t, err)
	ca, err := os.ReadFile(s.Operator.CAFile)
	require.NoError(t, err)
	fi, err := os.Stat(s.Operator.KeyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	t.Run("OperatorWritesAndReads", func(t *testing.T) {
		tlsCfg, err := etcd.ClientTLS(operator, ca)
		require.NoError(t, err)
		cli, err := etcd.Dial(s.Endpoints, tlsCfg)
		require.NoError(t, err)
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = cli.Put(cctx, "e2e/key", "value")
		require.NoError(t, err)
		for _, ep := range s.Endpoints { // every member serves the write
			one, err := etcd.Dial([]string{ep}, tlsCfg)
			require.NoError(t, err)
			got, err := one.Get(cctx, "e2e/key")
			one.Close()
			require.NoError(t, err)
			require.Len(t, got.Kvs, 1)
			require.Equal(t, "value", string(got.Kvs[0].Value))
		}
	})

	t.Run("ClientsWithoutTheRightCertificateAreRefused", func(t *testing.T) {
		// The client trusts the right root; only its own certificate differs.
		roots := x509.NewCertPool()
		require.True(t, roots.AppendCertsFromPEM(ca))

		// Another deployment's "etcd" authority: same service name, other root.
		other, err := pki.NewManager(mem.New(), pki.Options{KEK: bytes.Repeat([]byte{7}, 32)})
		require.NoError(t, err)
		b, err := other.Issue(ctx, etcd.Service, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "operator"}})
		require.NoError(t, err)
		foreign, err := b.TLSCertificate()
		require.NoError(t, err)

		for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "certificate from another CA": {foreign}} {
			host := strings.TrimPrefix(s.Endpoints[0], "https://")
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", host,
				&tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12})
			if err == nil {
				// TLS 1.3 reports the server's refusal on the first read.
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
				if err == nil {
					_, err = conn.Read(make([]byte, 1))
				}
				conn.Close()
			}
			require.Error(t, err, name)
			t.Logf("%s: refused: %v", name, err)
			require.Regexp(t, `certificate|bad|unknown|handshake`, err.Error(), name)
		}
	})

	t.Run("EachServingCertificateNamesOnlyItsMember", func(t *testing.T) {
		tlsCfg, err := etcd.ClientTLS(operator, ca)
		require.NoError(t, err)
		for _, n := range s.Nodes {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.InterfaceAddr.String()+":2379", tlsCfg)
			require.NoError(t, err, n.Name)
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			require.Equal(t, n.Name, leaf.Subject.CommonName)
			require.Equal(t, []string{n.Name + ".etcd.mason.lab"}, leaf.DNSNames)
			for _, ip := range leaf.IPAddresses {
				a, _ := netip.AddrFromSlice(ip)
				require.Equal(t, n.InterfaceAddr, a.Unmap(), "%s's certificate names only its own address", n.Name)
			}
			for _, d := range leaf.DNSNames {
				require.NotContains(t, d, "*")
			}
		}
	})

	t.Run("ConvergedRerunRunsNothing", func(t *testing.T) {
		again, err := etcd.Up(ctx, cfg)
		require.NoError(t, err)
		require.Equal(t, 0, again.Result.Count(graph.StateSucceeded), "nothing ran")
		require.Equal(t, len(again.Plan.Steps), again.Plan.Count(graph.ActionSkip))
	})

	t.Run("ScaleToFiveJoinsWithMemberAdd", func(t *testing.T) {
		cfg5 := cfg
		cfg5.Members = 5
		s5, err := etcd.Up(ctx, cfg5)
		require.NoError(t, err)
		ran := map[string]string{}
		for _, st := range s5.Plan.Steps {
			if st.Action != graph.ActionSkip {
				ran[st.ID] = st.Reason
			}
		}
		// Only roles of the new nodes and those whose inputs changed run. The
		// founding set runs once (Meta.Once): its input is known only after
		// the new peer URLs exist, and then it is not re-run.
		require.Equal(t, map[string]string{
			"etcd-bootstrap":      "inputs known after run (waits for etcd-peer-url@n4, etcd-peer-url@n5)",
			"etcd-peer-url@n4":    "new",
			"etcd-peer-url@n5":    "new",
			"etcd-member-cert@n4": "new",
			"etcd-member-cert@n5": "new",
			"etcd-member@n1":      "input Peers changed: +n4 +n5",
			"etcd-member@n2":      "input Peers changed: +n4 +n5",
			"etcd-member@n3":      "input Peers changed: +n4 +n5",
			"etcd-member@n4":      "new",
			"etcd-member@n5":      "new",
			"etcd-verify":         "input Members changed: +n4 +n5",
		}, ran)
		bootstrap, ok := s5.Result.Outcome("etcd-bootstrap")
		require.True(t, ok)
		require.Equal(t, graph.StateSkipped, bootstrap.State)

		// The new members really joined the running cluster.
		for _, n := range []string{"n4", "n5"} {
			cfgFile := nodeFile(t, ctx, s5.Nodes, n, etcd.ConfigFile)
			require.Contains(t, cfgFile, "initial-cluster-state: existing")
		}
		require.Contains(t, nodeFile(t, ctx, s5.Nodes, "n1", etcd.ConfigFile), "initial-cluster-state: new")
		s = s5
	})

	t.Run("KilledMemberIsTheOnlyOneRestarted", func(t *testing.T) {
		victim := s.Nodes[1]
		pid := strings.TrimSpace(nodeFile(t, ctx, s.Nodes, victim.Name, etcd.PIDFile))
		res, err := victim.Transport.Run(ctx, provider.Command{Args: []string{"kill", "-9", pid}})
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode, string(res.Stderr))

		again, err := etcd.Up(ctx, etcd.Config{Lab: cfg.Lab, LabDir: cfg.LabDir, StateDir: cfg.StateDir, Members: len(s.Nodes), Out: &log})
		require.NoError(t, err)
		var ran []string
		for _, o := range again.Result.Outcomes {
			if o.State == graph.StateSucceeded {
				ran = append(ran, o.ID)
			}
		}
		require.Equal(t, []string{"etcd-member@" + victim.Name}, ran)
		st, _ := again.Plan.Step("etcd-member@" + victim.Name)
		require.Equal(t, "drifted: etcd is not running on "+victim.Name, st.Reason)
	})

	t.Run("ScaleToThreeRemovesMembersWhileAClientWorks", func(t *testing.T) {
		require.Len(t, s.Nodes, 5)
		l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
		require.NoError(t, err)
		var leaving []*lab.NodeInfo
		for _, n := range s.Nodes[3:] {
			fresh, err := l.Provider().Get(ctx, n.ID)
			require.NoError(t, err)
			var info *lab.NodeInfo
			require.True(t, fresh.As(&info))
			leaving = append(leaving, info)
		}

		// A client of the members that stay writes and reads all through
		// the change; every request that fails is counted.
		tlsCfg, err := etcd.ClientTLS(operator, ca)
		require.NoError(t, err)
		cli, err := etcd.Dial(s.Endpoints[:3], tlsCfg)
		require.NoError(t, err)
		defer cli.Close()
		stop := make(chan struct{})
		type load struct {
			requests, failed int
			errs             []string
		}
		done := make(chan load)
		go func() {
			var ld load
			deadline := time.Now().Add(6 * time.Minute)
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					done <- ld
					return
				case <-time.After(20 * time.Millisecond):
				}
				val := fmt.Sprint(i)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cli.Put(cctx, "e2e/load", val)
				ld.requests++
				if err == nil {
					var got *clientv3.GetResponse
					got, err = cli.Get(cctx, "e2e/load")
					ld.requests++
					if err == nil && (len(got.Kvs) != 1 || string(got.Kvs[0].Value) != val) {
						err = fmt.Errorf("read %v after writing %s", got.Kvs, val)
					}
				}
				cancel()
				if err != nil {
					ld.failed++
					ld.errs = append(ld.errs, err.Error())
				}
			}
			<-stop
			done <- ld
		}()

		cfg3 := cfg
		cfg3.Members = 3
		s3, err := etcd.Up(ctx, cfg3)
		time.Sleep(time.Second) // and a moment after
		close(stop)
		ld := <-done
		require.NoError(t, err)
		t.Logf("client during 5 -> 3: %d requests, %d failed %v", ld.requests, ld.failed, ld.errs)
		require.Greater(t, ld.requests, 20)
		require.Zero(t, ld.failed, "failed requests during the removal: %v", ld.errs)

		var removals []string
		for _, rm := range s3.Plan.Removals {
			require.Equal(t, graph.ReasonNodeLeft, rm.Why)
			for _, st := range rm.Steps {
				removals = append(removals, fmt.Sprintf("%s %v %s", st.ID, st.Undo, st.Reason))
			}
		}
		require.Equal(t, []string{
			"etcd-member@n4 true undo: node n4 left the deployment",
			"etcd-member-cert@n4 false forget: the role has no Undo",
			"etcd-peer-url@n4 false forget: the role has no Undo",
			"etcd-member@n5 true undo: node n5 left the deployment",
			"etcd-member-cert@n5 false forget: the role has no Undo",
			"etcd-peer-url@n5 false forget: the role has no Undo",
		}, removals)
		for _, rm := range s3.Result.Removals {
			require.True(t, rm.Done, rm.Node)
			require.NoError(t, rm.Err)
		}
		ran := map[string]string{}
		for _, st := range s3.Plan.Steps {
			if st.Action != graph.ActionSkip {
				ran[st.ID] = st.Reason
			}
		}
		require.Equal(t, map[string]string{
			"etcd-member@n1": "input Peers changed: -n4 -n5",
			"etcd-member@n2": "input Peers changed: -n4 -n5",
			"etcd-member@n3": "input Peers changed: -n4 -n5",
			"etcd-verify":    "input Members changed: -n4 -n5",
		}, ran)
		require.Contains(t, log.String(), "removed member n4 (member-remove, then its node was deleted)")

		// The cluster has the three members, and n4 and n5 are gone.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		list, err := cli.MemberList(cctx)
		require.NoError(t, err)
		var names []string
		for _, m := range list.Members {
			names = append(names, m.Name)
		}
		require.ElementsMatch(t, []string{"n1", "n2", "n3"}, names)
		for k, info := range leaving {
			_, err := l.Provider().Get(ctx, s.Nodes[3+k].ID)
			require.ErrorIs(t, err, provider.ErrNotFound)
			_, err = os.Stat(info.NetNS)
			require.True(t, os.IsNotExist(err), "netns %s is gone", info.NetNS)
			require.Error(t, exec.Command("ip", "link", "show", info.HostVeth).Run(), "veth %s is gone", info.HostVeth)
			require.ErrorIs(t, syscall.Kill(info.PID, 0), syscall.ESRCH, "node init %d is gone", info.PID)
		}
		entries := journalOf(t, ctx, cfg)
		for _, e := range entries {
			require.NotRegexp(t, `@n[45]$`, e.ID, "the journal forgot the removed members")
		}

		again, err := etcd.Up(ctx, cfg3)
		require.NoError(t, err)
		require.True(t, again.Plan.Converged(), again.Plan.String())
		s = s3
	})

	t.Run("DestroyLeavesNothingBehind", func(t *testing.T) {
		l, err := lab.Open(ctx, lab.Options{Name: cfg.Lab, Dir: cfg.LabDir})
		require.NoError(t, err)
		bridge := l.Bridge()
		var infos []*lab.NodeInfo
		for _, n := range s.Nodes {
			fresh, err := l.Provider().Get(ctx, n.ID)
			require.NoError(t, err)
			var info *lab.NodeInfo
			require.True(t, fresh.As(&info))
			infos = append(infos, info)
		}

		require.NoError(t, etcd.Destroy(ctx, cfg))
		destroyed = true

		require.Error(t, exec.Command("ip", "link", "show", bridge).Run(), "bridge %s is gone", bridge)
		for _, info := range infos {
			_, err := os.Stat(info.NetNS)
			require.True(t, os.IsNotExist(err), "netns %s is gone", info.NetNS)
			require.Error(t, exec.Command("ip", "link", "show", info.HostVeth).Run(), "veth %s is gone", info.HostVeth)
			err = syscall.Kill(info.PID, 0)
			require.ErrorIs(t, err, syscall.ESRCH, "node init %d is gone", info.PID)
		}
		mounts, err := os.ReadFile("/proc/self/mountinfo")
		require.NoError(t, err)
		require.NotContains(t, string(mounts), cfg.LabDir, "no mount under the lab's directory")
		fw, _ := exec.Command("iptables", "-S", "FORWARD").CombinedOutput()
		require.NotContains(t, string(fw), bridge, "no firewall rule for the bridge")
		out, _ := exec.Command("ps", "-eo", "args").Output()
		require.NotContains(t, string(out), cfg.LabDir, "no process of the lab")
		_, err = os.Stat(cfg.StateDir)
		require.True(t, os.IsNotExist(err))
	})
}

func nodeFile(t *testing.T, ctx context.Context, nodes []*provider.Node, name, path string) string {
	t.Helper()
	for _, n := range nodes {
		if n.Name == name {
			b, err := n.Transport.Get(ctx, path)
			require.NoError(t, err)
			return string(b)
		}
	}
	t.Fatalf("no node %s", name)
	return ""
}

// journalOf reads the example's journal (the state file is open only
// while it reads).
func journalOf(t *testing.T, ctx context.Context, cfg etcd.Config) []graph.Entry {
	t.Helper()
	st, err := bolt.Open(filepath.Join(cfg.StateDir, "state.db"), nil)
	require.NoError(t, err)
	defer st.Close()
	entries, err := graph.ReadJournal(ctx, st, cfg.Lab)
	require.NoError(t, err)
	return entries
}
