package pki_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// mtlsServer is a real TLS server on loopback. Each accepted connection
// completes the handshake, answers "hello <client CN> <server serial>" and
// closes; the handshake's outcome goes to results.
type mtlsServer struct {
	addr    string
	results chan error
}

func startServer(t *testing.T, cfg *tls.Config) *mtlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &mtlsServer{addr: ln.Addr().String(), results: make(chan error, 64)}
	tln := tls.NewListener(ln, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tln.Accept()
			if err != nil {
				return // listener closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := c.(*tls.Conn)
				err := tc.Handshake()
				select {
				case s.results <- err:
				default:
				}
				if err != nil {
					return
				}
				cs := tc.ConnectionState()
				_, _ = fmt.Fprintf(c, "hello %s %x\n", cs.PeerCertificates[0].Subject.CommonName, cs.PeerCertificates[0].SerialNumber)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// serverErr returns the outcome of the server's next handshake.
func (s *mtlsServer) serverErr(t *testing.T) error {
	select {
	case err := <-s.results:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no handshake")
		return nil
	}
}

// talk connects with cfg and returns the server's greeting and the serial
// of the server's certificate.
func talk(addr string, cfg *tls.Config) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		// With TLS 1.3 the server judges the client's certificate after
		// the client's handshake is done; its verdict arrives as an alert
		// on the first read.
		return "", "", err
	}
	serial := fmt.Sprintf("%x", c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber)
	return line, serial, nil
}

type tlsFixture struct {
	ctx    context.Context
	st     store.Store
	kek    *seal.KEK
	m      *pki.Manager
	etcd   *pki.Authority
	other  *pki.Authority
	srv    *mtlsServer
	srvRel *pki.Reloader
	srvB   pki.Bundle
}

func newTLSFixture(t *testing.T, inter bool) *tlsFixture {
	ctx := context.Background()
	st := memStore(t)
	kek := newKEK(t)
	m := newManager(t, st, kek)
	etcd, err := m.Open(ctx, "etcd", pki.AuthorityConfig{Intermediate: inter})
	require.NoError(t, err)
	other, err := m.Open(ctx, "other", pki.AuthorityConfig{})
	require.NoError(t, err)
	srvB, err := etcd.Issue(ctx, pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1.lab"}, IPs: []netip.Addr{lo}}})
	require.NoError(t, err)
	rel, err := pki.NewReloader(srvB)
	require.NoError(t, err)
	return &tlsFixture{ctx: ctx, st: st, kek: kek, m: m, etcd: etcd, other: other, srv: startServer(t, etcd.ServerConfig(rel)), srvRel: rel, srvB: srvB}
}

func (f *tlsFixture) client(t *testing.T, a *pki.Authority, name string) *pki.Reloader {
	b, err := a.Issue(f.ctx, clientReq(name))
	require.NoError(t, err)
	r, err := pki.NewReloader(b)
	require.NoError(t, err)
	return r
}

func TestMutualTLS(t *testing.T) {
	for _, inter := range []bool{false, true} {
		t.Run(fmt.Sprintf("intermediate=%v", inter), func(t *testing.T) {
			f := newTLSFixture(t, inter)
			ctx := f.ctx

			// Certificates for the refused cases.
			revokedB, err := f.etcd.Issue(ctx, clientReq("revoked-client"))
			require.NoError(t, err)
			require.NoError(t, f.etcd.Revoke(ctx, revokedB.Serial, pki.ReasonKeyCompromise))
			revoked, err := pki.NewReloader(revokedB)
			require.NoError(t, err)

			// A controller whose clock is two days behind issues a
			// certificate that expired a day ago.
			past := newManager(t, f.st, f.kek, func(o *pki.Options) {
				o.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
			})
			expiredB, err := past.Issue(ctx, "etcd", pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: "expired-client"}, Profile: pki.Profile{Validity: time.Hour}})
			require.NoError(t, err)
			require.True(t, expiredB.NotAfter.Before(time.Now()))
			expired, err := pki.NewReloader(expiredB)
			require.NoError(t, err)

			// A server-only certificate lacks the client-auth usage.
			serverOnly := func() *pki.Reloader {
				b, err := f.etcd.Issue(ctx, serverReq("web", "web.lab"))
				require.NoError(t, err)
				r, err := pki.NewReloader(b)
				require.NoError(t, err)
				return r
			}()

			tests := []struct {
				name      string
				cert      *pki.Reloader
				serverErr string // "" means the handshake succeeds
			}{
				{"right root", f.client(t, f.etcd, "admin"), ""},
				{"peer certificate as client", f.srvRel, ""},
				{"no certificate", nil, "didn't provide a certificate"},
				{"other service's root", f.client(t, f.other, "admin"), "unknown authority"},
				{"revoked", revoked, "revoked"},
				{"expired", expired, "expired"},
				{"server-only usage", serverOnly, "incompatible key usage"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					line, _, err := talk(f.srv.addr, f.etcd.ClientConfig(tc.cert, "127.0.0.1"))
					serr := f.srv.serverErr(t)
					if tc.serverErr == "" {
						require.NoError(t, err)
						require.NoError(t, serr)
						require.Contains(t, line, "hello ")
						return
					}
					require.Error(t, err, "client must be refused")
					require.Empty(t, line)
					require.ErrorContains(t, serr, tc.serverErr)
				})
			}
		})
	}
}

func TestClientPinsServiceRoot(t *testing.T) {
	f := newTLSFixture(t, false)
	admin := f.client(t, f.etcd, "admin")

	// A server with a certificate from another service's root.
	impostorB, err := f.other.Issue(f.ctx, serverReq("n1", "n1.lab"))
	require.NoError(t, err)
	impRel, err := pki.NewReloader(impostorB)
	require.NoError(t, err)
	impostor := startServer(t, f.other.ServerConfig(impRel))

	tests := []struct {
		name       string
		addr       string
		serverName string
		err        string
	}{
		{"right server by IP", f.srv.addr, "127.0.0.1", ""},
		{"right server by DNS name", f.srv.addr, "n1.lab", ""},
		{"name not in certificate", f.srv.addr, "n2.lab", "valid for n1.lab, not n2.lab"},
		{"server from another root", impostor.addr, "127.0.0.1", "signed by unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line, serial, err := talk(tc.addr, f.etcd.ClientConfig(admin, tc.serverName))
			if tc.err == "" {
				require.NoError(t, err)
				require.Contains(t, line, "hello admin ")
				require.Equal(t, f.srvB.Serial, serial)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}

	// A revoked server is refused by clients too.
	require.NoError(t, f.etcd.Revoke(f.ctx, f.srvB.Serial, pki.ReasonKeyCompromise))
	_, _, err = talk(f.srv.addr, f.etcd.ClientConfig(admin, "127.0.0.1"))
	require.ErrorIs(t, err, pki.ErrRevoked)
}

// TestHotReload renews the server's certificate and rotates the root while
// one listener keeps running: new handshakes see the new certificate and
// root without a restart.
func TestHotReload(t *testing.T) {
	f := newTLSFixture(t, true)
	admin := f.client(t, f.etcd, "admin")
	cfg := f.etcd.ClientConfig(admin, "n1.lab")

	_, serial, err := talk(f.srv.addr, cfg)
	require.NoError(t, err)
	require.Equal(t, f.srvB.Serial, serial)
	require.NoError(t, f.srv.serverErr(t))

	renewed, err := f.etcd.Renew(f.ctx, pki.Peer, "n1")
	require.NoError(t, err)
	require.NoError(t, f.srvRel.Update(renewed))
	_, serial, err = talk(f.srv.addr, cfg)
	require.NoError(t, err)
	require.Equal(t, renewed.Serial, serial, "the listener serves the renewed certificate")
	require.NoError(t, f.srv.serverErr(t))

	// Rotate the root. During the overlap a client with a certificate from
	// the new root and one from the old root are both accepted, and the
	// server can move to a new-root certificate.
	require.NoError(t, f.etcd.RotateRoot(f.ctx, time.Hour))
	newAdmin := f.client(t, f.etcd, "admin2")
	for _, c := range []*pki.Reloader{admin, newAdmin} {
		_, _, err = talk(f.srv.addr, f.etcd.ClientConfig(c, "n1.lab"))
		require.NoError(t, err)
		require.NoError(t, f.srv.serverErr(t))
	}
	rotated, err := f.etcd.Issue(f.ctx, pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1.lab"}, IPs: []netip.Addr{lo}}})
	require.NoError(t, err)
	require.NotEqual(t, renewed.Serial, rotated.Serial)
	require.NoError(t, f.srvRel.Update(rotated))
	// The old client config (built before the rotation) follows the roots.
	_, serial, err = talk(f.srv.addr, cfg)
	require.NoError(t, err)
	require.Equal(t, rotated.Serial, serial)
	require.NoError(t, f.srv.serverErr(t))

	// Without an overlap the previous root is dropped at once. Clients stop
	// trusting the server's certificate from it...
	require.NoError(t, f.etcd.RotateRoot(f.ctx, 0))
	_, _, err = talk(f.srv.addr, f.etcd.ClientConfig(newAdmin, "n1.lab"))
	require.ErrorContains(t, err, "failed verification by authority")
	require.Error(t, f.srv.serverErr(t))
	// ...and the same listener refuses client certificates from it. (This
	// probe skips verifying the server, to reach the server's check.)
	probe := &tls.Config{InsecureSkipVerify: true, GetClientCertificate: newAdmin.GetClientCertificate}
	_, _, err = talk(f.srv.addr, probe)
	require.Error(t, err)
	require.ErrorContains(t, f.srv.serverErr(t), "unknown authority")
}

// TestFollowAcrossControllers: a server run by one controller refuses a
// client revoked by another controller once Follow has seen it.
func TestFollowAcrossControllers(t *testing.T) {
	f := newTLSFixture(t, false)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.etcd.Follow(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	admin, err := f.etcd.Issue(f.ctx, clientReq("admin"))
	require.NoError(t, err)
	rel, err := pki.NewReloader(admin)
	require.NoError(t, err)
	_, _, err = talk(f.srv.addr, f.etcd.ClientConfig(rel, "127.0.0.1"))
	require.NoError(t, err)
	require.NoError(t, f.srv.serverErr(t))

	second := newManager(t, f.st, f.kek)
	require.NoError(t, second.Revoke(f.ctx, "etcd", admin.Serial))
	require.Eventually(t, func() bool { return f.etcd.Revoked(admin.Serial) }, 10*time.Second, 10*time.Millisecond)
	_, _, err = talk(f.srv.addr, f.etcd.ClientConfig(rel, "127.0.0.1"))
	require.Error(t, err)
	require.ErrorIs(t, f.srv.serverErr(t), pki.ErrRevoked)

	// A rotation by the other controller reaches this one's roots as well.
	other, err := second.Load(f.ctx, "etcd")
	require.NoError(t, err)
	require.NoError(t, other.RotateRoot(f.ctx, time.Hour))
	require.Eventually(t, func() bool { return len(f.etcd.Roots()) == 2 }, 10*time.Second, 10*time.Millisecond)
}

// TestKeep: a running listener follows renewals and root rotations made
// anywhere, through Keep.
func TestKeep(t *testing.T) {
	f := newTLSFixture(t, false)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	req := pki.Request{Kind: pki.Peer, Identity: pki.Identity{Name: "n1", DNSNames: []string{"n1.lab"}, IPs: []netip.Addr{lo}}}
	go func() { done <- f.etcd.Keep(ctx, req, f.srvRel, 5*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	admin := f.client(t, f.etcd, "admin")
	// servedSerial runs inside Eventually's goroutine: no require here.
	servedSerial := func() string {
		_, serial, err := talk(f.srv.addr, f.etcd.ClientConfig(admin, "n1.lab"))
		serr := <-f.srv.results
		if err != nil || serr != nil {
			return ""
		}
		return serial
	}
	require.Equal(t, f.srvB.Serial, servedSerial())

	// Another controller renews the certificate.
	renewed, err := newManager(t, f.st, f.kek).Issue(f.ctx, "etcd", req)
	require.NoError(t, err)
	require.Equal(t, f.srvB.Serial, renewed.Serial, "not due yet: Issue returns the stored one")
	other, err := newManager(t, f.st, f.kek).Load(f.ctx, "etcd")
	require.NoError(t, err)
	renewed, err = other.Renew(f.ctx, pki.Peer, "n1")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return servedSerial() == renewed.Serial }, 10*time.Second, 20*time.Millisecond)

	// A root rotation here makes Keep re-issue from the new root.
	require.NoError(t, f.etcd.RotateRoot(f.ctx, time.Hour))
	require.Eventually(t, func() bool { return servedSerial() != renewed.Serial }, 10*time.Second, 20*time.Millisecond)
	require.Error(t, f.etcd.Keep(f.ctx, req, f.srvRel, 0))
}
