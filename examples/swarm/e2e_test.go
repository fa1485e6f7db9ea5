package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/examples/swarm/swarm"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/netsvc"
	daemonclient "github.com/masonops/mason/netsvc/daemon/client"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

// TestEndToEnd deploys 1 manager + 2 workers, checks everything a user
// relies on, scales out and in under load, rolls an engine change with an
// injected failure, and destroys and rebuilds twice.
func TestEndToEnd(t *testing.T) {
	needs(t)
	ctx := ctxT(t, 12*time.Minute)
	cfg, out, logs := testConfig(t, "e2e-swarm", 1, 2)
	events := &syncBuffer{}
	cfg.Events = graph.JSONLines(events)

	s, err := swarm.Up(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, len(s.Plan.Steps), s.Result.Count(graph.StateSucceeded))
	require.Equal(t, []string{"m1", "w1", "w2"}, s.Answered)
	t.Logf("deployed 1+2 in %v", s.Elapsed)
	m1 := s.Managers[0]
	op := operator(t, s, m1)

	t.Run("NodeListOverMutualTLS", func(t *testing.T) {
		require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker", "w2 ready active worker"}, swarmNodes(t, ctx, op))
		// The docker CLI, with the operator's DOCKER_CERT_PATH.
		cmd := exec.CommandContext(ctx, "docker", "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		cmd.Env = append(os.Environ(), "DOCKER_HOST=tcp://"+m1.InterfaceAddr.String()+":2376", "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+s.OperatorDir)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		sortStrings(lines)
		require.Equal(t, []string{"m1 Ready", "w1 Ready", "w2 Ready"}, lines)
	})

	t.Run("EveryNodeAnswersThroughTheLoadBalancer", func(t *testing.T) {
		seen, n, err := swarm.ReachAll(ctx, s.URL, []string{"m1", "w1", "w2"}, 20*time.Second)
		require.NoError(t, err)
		require.Equal(t, []string{"m1", "w1", "w2"}, seen)
		t.Logf("%d requests through %s reached %v", n, s.URL, seen)
	})

	t.Run("EngineRefusesClientsWithoutTheRightCertificate", func(t *testing.T) {
		ca, err := os.ReadFile(filepath.Join(s.OperatorDir, "ca.pem"))
		require.NoError(t, err)
		roots := x509.NewCertPool()
		require.True(t, roots.AppendCertsFromPEM(ca))
		// Another deployment's "docker" authority: same name, other root.
		other, err := pki.NewManager(mem.New(), pki.Options{KEK: bytes.Repeat([]byte{7}, 32)})
		require.NoError(t, err)
		b, err := other.Issue(ctx, swarm.DockerCA, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "operator"}})
		require.NoError(t, err)
		foreign, err := b.TLSCertificate()
		require.NoError(t, err)
		for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "certificate from another CA": {foreign}} {
			for _, n := range s.Nodes() {
				hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}}
				resp, err := hc.Get("https://" + n.InterfaceAddr.String() + ":2376/v1.41/info")
				if err == nil {
					resp.Body.Close()
				}
				require.Error(t, err, "%s: %s", n.Name, name)
				require.Regexp(t, `certificate|bad|unknown|handshake|reset|EOF`, err.Error(), name)
			}
			t.Logf("%s: refused by every engine", name)
		}
		// The operator's own certificate is let in, and every engine's
		// certificate names exactly its node.
		for _, n := range s.Nodes() {
			c := operator(t, s, n)
			info, err := c.Info(ctx)
			require.NoError(t, err)
			require.Equal(t, n.Name, info.Name)
			conn, err := tls.Dial("tcp", n.InterfaceAddr.String()+":2376", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
			require.NoError(t, err)
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			require.Equal(t, []string{n.Name + ".swarm.mason.lab"}, leaf.DNSNames)
			require.Len(t, leaf.IPAddresses, 1)
			require.Equal(t, n.InterfaceAddr.String(), leaf.IPAddresses[0].String())
		}
	})

	t.Run("DigResolvesEveryNode", func(t *testing.T) {
		for _, n := range append(s.Nodes(), s.Service) {
			require.Equal(t, n.InterfaceAddr.String(), dig(t, ctx, s, n.Name), n.Name)
		}
		require.Equal(t, s.Service.InterfaceAddr.String(), dig(t, ctx, s, "demo"), "the service name is the load balancer")
	})

	t.Run("TheSpecThroughTheFrontEndIsConverged", func(t *testing.T) {
		// swarm.hcl, run by mason's front end on the same lab and state,
		// finds nothing to do: the Go program and the spec are one
		// deployment.
		code, text := frontEnd(t, cfg, "plan")
		require.Equal(t, 0, code, text)
		require.Contains(t, text, "no changes: swarm is converged")
	})

	t.Run("ConvergedRerunRunsNothing", func(t *testing.T) {
		again, err := swarm.Up(ctx, cfg)
		require.NoError(t, err)
		require.Empty(t, succeeded(again.Result), "nothing ran")
		require.Equal(t, len(again.Plan.Steps), again.Plan.Count(graph.ActionSkip))
		t.Logf("converged re-run with drift checks: %v", again.Elapsed)
	})

	t.Run("ScaleOutRunsOnlyTheNewNodeTheLBAndDNS", func(t *testing.T) {
		cfg3 := cfg
		cfg3.Workers = 3
		s3, err := swarm.Up(ctx, cfg3)
		require.NoError(t, err)
		require.Equal(t, map[string]string{
			"docker-engine-cert@w3": "run: new",
			"docker-engine@w3":      "run: new",
			"demo-image@w3":         "run: new",
			"swarm-worker@w3":       "run: new",
			"demo-endpoint@w3":      "run: new",
			"swarm-lb":              "run: input Backends changed: +w3",
			"swarm-dns":             "run: input Nodes changed: +w3",
			"swarm-verify":          "run-if-changed: inputs known after run (waits for swarm-dns, swarm-lb)",
		}, ran(s3.Plan))
		require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker", "w2 ready active worker", "w3 ready active worker"}, swarmNodes(t, ctx, op))
		require.Equal(t, []string{"m1", "w1", "w2", "w3"}, s3.Answered)
		require.Equal(t, []string{"m1", "w1", "w2", "w3"}, backends(t, ctx, cfg, s3))
		require.Equal(t, s3.Workers[2].InterfaceAddr.String(), dig(t, ctx, s3, "w3"))
		t.Logf("scale out to 3 workers: %v", s3.Elapsed)
		s = s3
	})

	t.Run("RollingEngineChangeStopsAtTheInjectedFailure", func(t *testing.T) {
		// Label every worker's engine tier=web; w1 gets a malformed label
		// too (no "="), which dockerd refuses at start: its restart fails.
		bad := cfg
		bad.Workers = 3
		bad.Engine = swarm.EngineSettings{Labels: []string{"tier=web"}}
		bad.NodeEngine = map[string]swarm.EngineSettings{"w1": {Labels: []string{"tier=web", "zone"}}}
		sBad, err := swarm.Up(ctx, bad)
		var be *graph.BreakerError
		require.ErrorAs(t, err, &be, "%v", err)
		require.Equal(t, "docker-engine", be.Role)
		require.Equal(t, 1, be.Failed)
		require.Equal(t, 3, be.Total)
		t.Logf("breaker: %v", be)
		require.NotNil(t, sBad.Result)
		res := sBad.Result
		state := func(id string) graph.State { o, ok := res.Outcome(id); require.True(t, ok, id); return o.State }
		// Batches of two in node order: w1 (fails) and w2 (done), then w3,
		// which the trip kept from starting.
		require.Equal(t, graph.StateFailed, state("docker-engine@w1"))
		require.Equal(t, graph.StateSucceeded, state("docker-engine@w2"))
		require.Equal(t, graph.StateBlocked, state("docker-engine@w3"))
		o, _ := res.Outcome("docker-engine@w1")
		require.Contains(t, o.Err.Error(), "bad attribute format: zone", "the error shows dockerd's refusal")

		// The untouched node keeps its old engine and keeps serving, with
		// the reconfigured one and the manager, through the load balancer.
		labelsOf := func(n *provider.Node) []string {
			info, err := operator(t, s, n).Info(ctx)
			require.NoError(t, err)
			return info.Labels
		}
		require.Empty(t, labelsOf(s.Workers[2]), "w3 was not touched")
		require.Equal(t, []string{"tier=web"}, labelsOf(s.Workers[1]))
		seen, _, err := swarm.ReachAll(ctx, s.URL, []string{"m1", "w2", "w3"}, 20*time.Second)
		require.NoError(t, err, "untouched nodes keep serving")
		require.NotContains(t, seen, "w1")

		// Fixed, the next run finishes the rest: w1 and w3.
		good := bad
		good.NodeEngine = nil
		s4, err := swarm.Up(ctx, good)
		require.NoError(t, err)
		require.Equal(t, "run: last run failed: "+o.Err.Error(), ran(s4.Plan)["docker-engine@w1"])
		require.Equal(t, "run: input Labels changed", ran(s4.Plan)["docker-engine@w3"])
		require.NotContains(t, ran(s4.Plan), "docker-engine@w2")
		require.Equal(t, []string{"docker-engine@w1", "docker-engine@w3"}, onlyRole(succeeded(s4.Result), "docker-engine@"))
		for _, n := range s.Workers {
			require.Equal(t, []string{"tier=web"}, labelsOf(n), n.Name)
		}
		require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker", "w2 ready active worker", "w3 ready active worker"}, swarmNodes(t, ctx, op))
		require.Equal(t, []string{"m1", "w1", "w2", "w3"}, s4.Answered)
		cfg = good
	})

	t.Run("ScaleInUnderLoadFailsNoRequest", func(t *testing.T) {
		in := cfg
		in.Workers = 2
		stop := make(chan struct{})
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(3 * time.Minute)
			for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := swarm.Get(ctx, s.URL); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		s2, err := swarm.Up(ctx, in)
		close(stop)
		wg.Wait()
		require.NoError(t, err)
		t.Logf("during the scale-in (%v): %d requests through the load balancer succeeded, %d failed", s2.Elapsed, ok.Load(), failed.Load())
		require.Zero(t, failed.Load(), "first failure: %v", firstErr.Load())
		require.Greater(t, ok.Load(), int64(50))
		require.Equal(t, []string{"w3"}, s2.Removed)
		require.Equal(t, map[string]string{
			"swarm-lb":       "run: input Backends changed: -w3",
			"swarm-dns":      "run: input Nodes changed: -w3",
			"swarm-leave@w3": "run: new",
			"swarm-verify":   "run-if-changed: inputs known after run (waits for swarm-dns, swarm-lb)",
		}, ran(s2.Plan))
		require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker", "w2 ready active worker"}, swarmNodes(t, ctx, op))
		require.Equal(t, []string{"m1", "w1", "w2"}, backends(t, ctx, cfg, s2))
		_, err = swarm.Resolve(ctx, s2.DNS, "w3.swarm.mason.lab")
		require.ErrorContains(t, err, "NXDOMAIN")
		require.Equal(t, "", dig(t, ctx, s2, "w3"))
		tr := traceLab(t, ctx, in)
		require.Len(t, tr.infos, 4, "w3's node is deleted")
		s = s2
		cfg = in
	})

	t.Run("JoinTokensAppearNowhereInPlainText", func(t *testing.T) {
		sw, err := op.Swarm(ctx)
		require.NoError(t, err)
		tokens := map[string]string{"worker token": sw.JoinTokens.Worker, "manager token": sw.JoinTokens.Manager}
		haystacks := map[string][]byte{"events": []byte(events.String()), "role logs": []byte(logs.String()), "output": []byte(out.String())}
		key, err := os.ReadFile(cfg.KeyFile())
		require.NoError(t, err)
		haystacks["key file"] = key
		// The state: the pki store and the journal, every record —
		// swarm-init's output, which holds the tokens as attr.Secret
		// values, is sealed — and the raw state file and its backup.
		st, err := bolt.Open(cfg.StateFile(), nil)
		require.NoError(t, err)
		ents, _, err := st.List(ctx, "")
		require.NoError(t, err)
		st.Close()
		require.NotEmpty(t, ents)
		sealed := false
		for _, e := range ents {
			haystacks["state "+e.Key] = append([]byte(e.Key+"\x00"), e.Value...)
			sealed = sealed || strings.HasSuffix(e.Key, "/nr/swarm-init@m1")
		}
		require.True(t, sealed, "the scan reads swarm-init's record")
		for _, f := range []string{cfg.StateFile(), bolt.BackupPath(cfg.StateFile())} {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			haystacks["file "+f] = raw
		}
		for what, tok := range tokens {
			require.True(t, strings.HasPrefix(tok, "SWMTKN-"), what)
			for where, b := range haystacks {
				for form, needle := range map[string]string{
					"raw": tok, "base64": base64.StdEncoding.EncodeToString([]byte(tok)), "hex": hex.EncodeToString([]byte(tok)),
					"secret part": strings.Split(tok, "-")[3],
				} {
					require.False(t, bytes.Contains(b, []byte(needle)), "%s (%s) found in %s", what, form, where)
				}
			}
		}
		t.Logf("no join token in %d places: events, logs, output, key file, the state file and its backup, and %d records of the state (pki store, journal, identity)", len(haystacks), len(ents))
	})

	t.Run("ANodeInAnotherSwarmIsAnError", func(t *testing.T) {
		// w2 leaves the deployment's swarm and makes one of its own.
		w2 := s.Workers[1]
		c := operator(t, s, w2)
		ip := w2.InterfaceAddr.String()
		require.NoError(t, c.SwarmLeave(ctx, true))
		_, err := c.SwarmInit(ctx, dockerapi.InitRequest{ListenAddr: ip + ":2377", AdvertiseAddr: ip + ":2377", DataPathAddr: ip})
		require.NoError(t, err)
		s2, err := swarm.Up(ctx, cfg)
		require.Error(t, err)
		require.Contains(t, err.Error(), "node w2 is already in another swarm")
		require.Contains(t, ran(s2.Plan)["swarm-worker@w2"], "it left the swarm and is in another one now")
		t.Logf("refused: %v", err)
		// Once it left that swarm, the next run joins it again, and the
		// node list keeps no stale entry of its first membership.
		require.NoError(t, c.SwarmLeave(ctx, true))
		s3, err := swarm.Up(ctx, cfg)
		require.NoError(t, err)
		require.Contains(t, ran(s3.Plan), "swarm-worker@w2")
		require.Equal(t, []string{"m1 ready active manager", "w1 ready active worker", "w2 ready active worker"}, swarmNodes(t, ctx, op))
		require.Equal(t, []string{"m1", "w1", "w2"}, s3.Answered)
	})

	t.Run("DestroyAndRebuildTwice", func(t *testing.T) {
		for round := 1; round <= 2; round++ {
			tr := traceLab(t, ctx, cfg)
			require.NotEmpty(t, tr.procs)
			require.NoError(t, swarm.Destroy(ctx, cfg))
			requireGone(t, tr, cfg)
			fresh := cfg
			fresh.Workers, fresh.Engine = 2, swarm.EngineSettings{}
			s2, err := swarm.Up(ctx, fresh)
			require.NoError(t, err, "deploy after destroy, round %d", round)
			require.Equal(t, len(s2.Plan.Steps), s2.Result.Count(graph.StateSucceeded), "everything ran anew")
			require.Equal(t, []string{"m1", "w1", "w2"}, s2.Answered)
			t.Logf("round %d: destroyed everything, deployed again in %v", round, s2.Elapsed)
			cfg = fresh
		}
		tr := traceLab(t, ctx, cfg)
		require.NoError(t, swarm.Destroy(ctx, cfg))
		requireGone(t, tr, cfg)
	})
}

func onlyRole(ids []string, prefix string) []string {
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	return out
}

// dig asks the DNS daemon for name in the zone with the real dig.
func dig(t *testing.T, ctx context.Context, s *swarm.Summary, name string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(s.DNS)
	require.NoError(t, err)
	b, err := exec.CommandContext(ctx, "dig", "@"+host, "-p", port, "+short", "+tries=2", "+time=2", name+"."+s.Zone, "A").CombinedOutput()
	require.NoError(t, err, string(b))
	return strings.TrimSpace(string(b))
}

// backends returns the load balancer frontend's backends that take new
// connections, asked over the daemon's mutual-TLS API with the
// controller's certificate.
func backends(t *testing.T, ctx context.Context, cfg swarm.Config, s *swarm.Summary) []string {
	t.Helper()
	st, err := bolt.Open(cfg.StateFile(), nil)
	require.NoError(t, err)
	defer st.Close()
	kek, err := seal.LoadFile(cfg.KeyFile())
	require.NoError(t, err)
	issuer, err := pki.NewManager(st, pki.Options{Key: kek})
	require.NoError(t, err)
	b, err := issuer.Issue(ctx, swarm.NetsvcCA, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: swarm.ControllerName}})
	require.NoError(t, err)
	tlsCfg, err := b.ClientTLS(s.Service.InterfaceAddr.String())
	require.NoError(t, err)
	c := daemonclient.New(s.Service.InterfaceAddr.String()+":8853", tlsCfg)
	defer c.Close()
	var lb netsvc.LoadBalancer = c
	fs, err := lb.Status(ctx, "demo")
	require.NoError(t, err)
	var out []string
	for _, be := range fs.Backends {
		if !be.Draining {
			out = append(out, be.Name)
		}
	}
	slices.Sort(out)
	return out
}
