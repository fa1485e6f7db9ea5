package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/netsvc/daemon/client"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

// childArgs, when set in the environment, makes the test binary run the
// daemon (Main) instead of the tests: the daemon test starts a real
// separate process without a build step.
const childArgs = "MASON_NETSVCD_TEST_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgs); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := Main(ctx, args, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// creds are real certificates from mason's pki: the daemon's server
// certificate, a controller's client certificate, and a stranger's from
// another service's authority.
type creds struct {
	auth     *pki.Authority
	server   pki.Bundle
	client   pki.Bundle
	stranger pki.Bundle
	files    pki.Files
}

func newCreds(t *testing.T) creds {
	t.Helper()
	ctx := context.Background()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	kek, err := seal.Generate()
	require.NoError(t, err)
	m, err := pki.NewManager(st, pki.Options{Key: kek})
	require.NoError(t, err)
	auth, err := m.Open(ctx, "netsvcd", pki.AuthorityConfig{})
	require.NoError(t, err)
	server, err := auth.Issue(ctx, pki.Request{Kind: pki.Server, Identity: pki.Identity{
		Name: "netsvcd-1", DNSNames: []string{"localhost"}, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	}})
	require.NoError(t, err)
	client, err := auth.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "controller"}})
	require.NoError(t, err)
	other, err := m.Open(ctx, "other-service", pki.AuthorityConfig{})
	require.NoError(t, err)
	stranger, err := other.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "controller"}})
	require.NoError(t, err)

	dir := t.TempDir()
	files := pki.FilesIn(dir, "netsvcd")
	require.NoError(t, os.WriteFile(files.Cert, server.CertPEM, 0o644))
	require.NoError(t, os.WriteFile(files.Key, server.KeyPEM.Reveal(), 0o600))
	require.NoError(t, os.WriteFile(files.CA, server.CAPEM, 0o644))
	return creds{auth: auth, server: server, client: client, stranger: stranger, files: files}
}

// clientFor returns a daemon client using pki's own mutual-TLS client
// config for bundle b (nil: no client certificate at all).
func (c creds) clientFor(t *testing.T, addr string, b *pki.Bundle) *client.Client {
	t.Helper()
	var r *pki.Reloader
	if b != nil {
		var err error
		r, err = pki.NewReloader(*b)
		require.NoError(t, err)
	}
	cl := client.New(addr, c.auth.ClientConfig(r, "127.0.0.1"))
	t.Cleanup(cl.Close)
	return cl
}

// proc is the daemon running as a child process.
type proc struct {
	cmd   *exec.Cmd
	addrs Addrs
	log   *os.File
}

func startDaemon(t *testing.T, c creds, state, api, dnsAddr string, extra ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready.json")
	args := []string{"-state", state, "-api", api, "-dns", dnsAddr, "-zone", "lab.example.",
		"-cert", c.files.Cert, "-key", c.files.Key, "-ca", c.files.CA, "-ready-file", ready}
	args = append(args, extra...)
	raw, _ := json.Marshal(args)
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgs+"="+string(raw))
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: logf}
	t.Cleanup(func() { p.kill(); logf.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			require.NoError(t, json.Unmarshal(b, &p.addrs))
			return p
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("daemon did not become ready: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the daemon the hard way (SIGKILL): no shutdown code runs.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func echoServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintln(c, name)
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func greet(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}

func lookup(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	require.NoError(t, err)
	return r
}

func TestDaemonSurvivesKill(t *testing.T) {
	ctx := context.Background()
	c := newCreds(t)
	state := filepath.Join(t.TempDir(), "netsvcd.db")
	d := startDaemon(t, c, state, "127.0.0.1:0", "127.0.0.1:0")
	cl := c.clientFor(t, d.addrs.API, &c.client)

	// The controller configures everything through the contracts.
	var (
		dnsSvc netsvc.DNS          = cl
		ipSvc  netsvc.IPAM         = cl
		lbSvc  netsvc.LoadBalancer = cl
	)
	require.NoError(t, ipSvc.AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/24")}))
	alloc, err := ipSvc.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "node/etcd-1", Note: "etcd"})
	require.NoError(t, err)
	require.NoError(t, dnsSvc.Upsert(ctx, "lab.example.", netsvc.RecordSet{Name: "etcd1", Type: netsvc.TypeA, Values: []string{alloc.Addr.String()}}))
	require.NoError(t, lbSvc.EnsureFrontend(ctx, netsvc.Frontend{Name: "api", Listen: "127.0.0.1:0"}))
	b1, b2 := echoServer(t, "api-1"), echoServer(t, "api-2")
	require.NoError(t, lbSvc.SetBackends(ctx, "api", []netsvc.Backend{{Addr: b1, Name: "api-1"}, {Addr: b2, Name: "api-2"}}))
	status, err := lbSvc.Status(ctx, "api")
	require.NoError(t, err)
	front := status.Listen

	r := lookup(t, d.addrs.DNS, "etcd1.lab.example.", dns.TypeA)
	require.Len(t, r.Answer, 1)
	require.Equal(t, "10.78.0.1", r.Answer[0].(*dns.A).A.String())
	serial := lookup(t, d.addrs.DNS, "lab.example.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	seen := map[string]bool{greet(t, front): true, greet(t, front): true}
	require.Equal(t, map[string]bool{"api-1": true, "api-2": true}, seen)

	// Errors cross the wire with their meaning.
	err = dnsSvc.Upsert(ctx, "nope.example.", netsvc.RecordSet{Name: "x", Type: netsvc.TypeA, Values: []string{"10.0.0.1"}})
	require.ErrorIs(t, err, netsvc.ErrUnknownZone)
	require.True(t, client.IsRemote(err))
	_, err = ipSvc.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "x", Addr: alloc.Addr})
	require.ErrorIs(t, err, netsvc.ErrAddrInUse)

	// The controller goes away; the daemon keeps serving. Then the daemon
	// is killed, and started again on the same state file and addresses.
	cl.Close()
	d.kill()
	_, err = net.DialTimeout("tcp", front, 500*time.Millisecond)
	require.Error(t, err, "killed daemon no longer listens")
	d2 := startDaemon(t, c, state, d.addrs.API, d.addrs.DNS)
	cl2 := c.clientFor(t, d2.addrs.API, &c.client)

	r = lookup(t, d2.addrs.DNS, "etcd1.lab.example.", dns.TypeA)
	require.Len(t, r.Answer, 1, "record survives the kill")
	require.Equal(t, "10.78.0.1", r.Answer[0].(*dns.A).A.String())
	require.Equal(t, serial, lookup(t, d2.addrs.DNS, "lab.example.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial)
	status2, err := cl2.Status(ctx, "api")
	require.NoError(t, err)
	require.Equal(t, front, status2.Listen, "frontend listens where it did")
	require.Len(t, status2.Backends, 2, "backends survive the kill")
	seen = map[string]bool{greet(t, front): true, greet(t, front): true}
	require.Equal(t, map[string]bool{"api-1": true, "api-2": true}, seen)
	again, err := cl2.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "node/etcd-1"})
	require.NoError(t, err)
	require.Equal(t, alloc.Addr, again.Addr, "allocation survives the kill")
	sets, err := cl2.Records(ctx, "lab.example.")
	require.NoError(t, err)
	require.Len(t, sets, 1)

	// Changes after the restart are served at once and bump the serial.
	require.NoError(t, cl2.Upsert(ctx, "lab.example.", netsvc.RecordSet{Name: "etcd2", Type: netsvc.TypeA, Values: []string{"10.78.0.2"}}))
	require.Len(t, lookup(t, d2.addrs.DNS, "etcd2.lab.example.", dns.TypeA).Answer, 1)
	require.Equal(t, serial+1, lookup(t, d2.addrs.DNS, "lab.example.", dns.TypeSOA).Answer[0].(*dns.SOA).Serial)
}

func TestClientWithoutValidCertificateRefused(t *testing.T) {
	ctx := context.Background()
	c := newCreds(t)
	d := startDaemon(t, c, filepath.Join(t.TempDir(), "s.db"), "127.0.0.1:0", "")
	good := c.clientFor(t, d.addrs.API, &c.client)
	require.NoError(t, good.AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/24")}))

	serverAsClient := c.server // has only the server-auth usage
	tests := []struct {
		name   string
		bundle *pki.Bundle
		alert  string
	}{
		{"no certificate", nil, "certificate required"},
		{"certificate from another service's CA", &c.stranger, "unknown certificate authority"},
		{"server certificate used as a client", &serverAsClient, "bad certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := c.clientFor(t, d.addrs.API, tt.bundle)
			_, err := cl.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "intruder"})
			require.Error(t, err)
			require.False(t, client.IsRemote(err), "refused in the handshake, before any call: %v", err)
			require.ErrorContains(t, err, tt.alert)
		})
	}
	// Nothing the refused clients asked for happened.
	list, err := good.Allocations(ctx, "lab")
	require.NoError(t, err)
	require.Empty(t, list)

	// Plain TLS without a client certificate, straight to the port.
	conn, err := tls.Dial("tcp", d.addrs.API, &tls.Config{RootCAs: c.auth.RootPool(), ServerName: "127.0.0.1"})
	if err == nil {
		// TLS 1.3 reports the missing certificate on the first read.
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "POST /v1/ipam/allocations HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"name\":\"lab\"}\n")
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	require.ErrorContains(t, err, "certificate required")
}

// With -crl the daemon refuses a revoked client as soon as the controller
// writes the new CRL, and keeps serving the others.
func TestRevokedClientRefused(t *testing.T) {
	ctx := context.Background()
	c := newCreds(t)
	retired, err := c.auth.Issue(ctx, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "old-controller"}})
	require.NoError(t, err)
	crlFile := filepath.Join(t.TempDir(), "netsvcd.crl")
	crl, err := c.auth.CRL(ctx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(crlFile, crl, 0o644))
	d := startDaemon(t, c, filepath.Join(t.TempDir(), "s.db"), "127.0.0.1:0", "", "-crl", crlFile)

	good, old := c.clientFor(t, d.addrs.API, &c.client), c.clientFor(t, d.addrs.API, &retired)
	require.NoError(t, good.AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/24")}))
	_, err = old.Allocations(ctx, "lab")
	require.NoError(t, err, "not revoked yet")

	require.NoError(t, c.auth.Revoke(ctx, retired.Serial, pki.ReasonCessation))
	crl, err = c.auth.CRL(ctx)
	require.NoError(t, err)
	tmp := crlFile + ".new"
	require.NoError(t, os.WriteFile(tmp, crl, 0o644))
	require.NoError(t, os.Rename(tmp, crlFile))

	old.Close() // new handshakes only
	_, err = c.clientFor(t, d.addrs.API, &retired).Allocations(ctx, "lab")
	require.Error(t, err)
	require.False(t, client.IsRemote(err))
	_, err = good.Allocations(ctx, "lab")
	require.NoError(t, err)
}

func TestServeRefusesTLSWithoutClientAuth(t *testing.T) {
	err := Serve(context.Background(), Config{Store: mem.New(), API: "127.0.0.1:0", TLS: &tls.Config{}})
	require.ErrorIs(t, err, ErrNoClientAuth)
	err = Serve(context.Background(), Config{Store: mem.New(), API: "127.0.0.1:0"})
	require.ErrorIs(t, err, ErrNoClientAuth)
}

// In-process: pki's authority configs on both sides, every call of the
// three contracts through the API.
func TestInProcessWithAuthorityConfigs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := newCreds(t)
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	reloader, err := pki.NewReloader(c.server)
	require.NoError(t, err)
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Config{Store: st, API: "127.0.0.1:0", DNS: "127.0.0.1:0", TLS: c.auth.ServerConfig(reloader),
			Ready: func(a Addrs) { ready <- a }})
	}()
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	cl := c.clientFor(t, addrs.API, &c.client)

	require.NoError(t, cl.AddZone(ctx, authdns.Zone{Name: "lab.example."}))
	require.NoError(t, cl.AddZone(ctx, authdns.Zone{Name: "0.78.10.in-addr.arpa."}))
	require.NoError(t, cl.AddRange(ctx, netsvc.Range{Name: "lab", Prefix: netip.MustParsePrefix("10.78.0.0/30")}))
	a, err := netsvc.AssignName(ctx, cl, cl, "lab", "node/n1", "lab.example.", "n1", "0.78.10.in-addr.arpa.")
	require.NoError(t, err)
	r := lookup(t, addrs.DNS, "1.0.78.10.in-addr.arpa.", dns.TypePTR)
	require.Len(t, r.Answer, 1)
	require.Equal(t, "n1.lab.example.", r.Answer[0].(*dns.PTR).Ptr)
	_, err = cl.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "node/n2"})
	require.NoError(t, err)
	_, err = cl.Allocate(ctx, netsvc.Request{Range: "lab", Owner: "node/n3"})
	require.ErrorIs(t, err, netsvc.ErrExhausted, "exhaustion crosses the wire")
	require.NoError(t, cl.Release(ctx, "lab", "node/n2"))
	list, err := cl.Allocations(ctx, "lab")
	require.NoError(t, err)
	require.Equal(t, []netsvc.Allocation{a}, stripTime(list, a))

	require.NoError(t, cl.Delete(ctx, "lab.example.", "n1", netsvc.TypeA))
	require.Equal(t, dns.RcodeNameError, lookup(t, addrs.DNS, "n1.lab.example.", dns.TypeA).Rcode)

	require.NoError(t, cl.EnsureFrontend(ctx, netsvc.Frontend{Name: "web", Listen: "127.0.0.1:0"}))
	b1 := echoServer(t, "one")
	require.NoError(t, cl.AddBackend(ctx, "web", netsvc.Backend{Addr: b1}))
	st1, err := cl.Status(ctx, "web")
	require.NoError(t, err)
	require.Equal(t, "one", greet(t, st1.Listen))
	require.NoError(t, cl.RemoveBackend(ctx, "web", b1))
	require.NoError(t, cl.SetBackends(ctx, "web", nil))
	require.ErrorIs(t, cl.AddBackend(ctx, "web", netsvc.Backend{Addr: "bad"}), netsvc.ErrInvalid)
	require.NoError(t, cl.DeleteFrontend(ctx, "web"))
	_, err = cl.Status(ctx, "web")
	require.ErrorIs(t, err, netsvc.ErrNotFound)
}

func stripTime(list []netsvc.Allocation, like netsvc.Allocation) []netsvc.Allocation {
	for i := range list {
		if list[i].Created.Equal(like.Created) {
			list[i].Created = like.Created
		}
	}
	return list
}
