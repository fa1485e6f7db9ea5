package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

// server is a real TCP backend: it greets each connection with its name,
// then echoes lines until the client closes.
type server struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	cs   map[net.Conn]struct{}
	wg   sync.WaitGroup
}

func startServer(t *testing.T, name string) *server {
	t.Helper()
	return startServerOn(t, name, "127.0.0.1:0")
}

// startServerOn listens on addr, waiting for it to be free (a restarted
// backend takes its old port again).
func startServerOn(t *testing.T, name, addr string) *server {
	t.Helper()
	var ln net.Listener
	require.Eventually(t, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "listen on %s", addr)
	s := &server{name: name, ln: ln, cs: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { s.mu.Lock(); delete(s.cs, c); s.mu.Unlock(); c.Close() }()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(s.kill)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// kill stops the server as a crash would: listener and connections close.
func (s *server) kill() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

type client struct {
	net.Conn
	r *bufio.Reader
}

// dial connects through the frontend and returns the backend's name.
func dial(t *testing.T, addr string) (*client, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cl := &client{Conn: c, r: bufio.NewReader(c)}
	name, err := cl.r.ReadString('\n')
	require.NoError(t, err, "no greeting through the balancer")
	return cl, strings.TrimSpace(name)
}

func (c *client) echo(t *testing.T, msg string) {
	t.Helper()
	_, err := fmt.Fprintf(c, "%s\n", msg)
	require.NoError(t, err)
	got, err := c.r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, msg+"\n", got)
}

func newBalancer(t *testing.T, st store.Store) *Balancer {
	t.Helper()
	if st == nil {
		m := mem.New()
		t.Cleanup(func() { m.Close() })
		st = m
	}
	b, err := New(context.Background(), st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// fastHealth checks often, but gives each check a generous timeout so a
// loaded CI machine does not fail healthy backends.
var fastHealth = netsvc.HealthCheck{Interval: 30 * time.Millisecond, Timeout: time.Second, Fall: 2, Rise: 2}

func frontendWith(t *testing.T, b *Balancer, f netsvc.Frontend, servers ...*server) string {
	t.Helper()
	ctx := context.Background()
	if f.Listen == "" {
		f.Listen = "127.0.0.1:0"
	}
	if f.Health == (netsvc.HealthCheck{}) {
		f.Health = fastHealth
	}
	require.NoError(t, b.EnsureFrontend(ctx, f))
	var bs []netsvc.Backend
	for _, s := range servers {
		bs = append(bs, netsvc.Backend{Addr: s.addr(), Name: s.name})
	}
	require.NoError(t, b.SetBackends(ctx, f.Name, bs))
	st, err := b.Status(ctx, f.Name)
	require.NoError(t, err)
	return st.Listen
}

func TestRoundRobinSpreads(t *testing.T) {
	b := newBalancer(t, nil)
	s1, s2, s3 := startServer(t, "a"), startServer(t, "b"), startServer(t, "c")
	addr := frontendWith(t, b, netsvc.Frontend{Name: "web"}, s1, s2, s3)
	counts := map[string]int{}
	for range 30 {
		c, name := dial(t, addr)
		c.echo(t, "hello")
		c.Close()
		counts[name]++
	}
	require.Equal(t, map[string]int{"a": 10, "b": 10, "c": 10}, counts)
	st, err := b.Status(context.Background(), "web")
	require.NoError(t, err)
	for _, bs := range st.Backends {
		require.EqualValues(t, 10, bs.Total, bs.Addr)
		require.True(t, bs.Healthy)
	}
}

func TestLeastConnections(t *testing.T) {
	for _, alg := range []netsvc.Algorithm{netsvc.LeastConn, netsvc.RoundRobin} {
		t.Run(string(alg), func(t *testing.T) {
			b := newBalancer(t, nil)
			s1, s2 := startServer(t, "a"), startServer(t, "b")
			addr := frontendWith(t, b, netsvc.Frontend{Name: "db", Algorithm: alg}, s1, s2)
			// One long connection pins a backend...
			long, busy := dial(t, addr)
			defer long.Close()
			// ...then short connections come and go.
			counts := map[string]int{}
			for range 10 {
				c, name := dial(t, addr)
				c.echo(t, "x")
				c.Close()
				counts[name]++
				// Wait until the balancer saw the close.
				require.Eventually(t, func() bool {
					st, _ := b.Status(context.Background(), "db")
					var active int64
					for _, bs := range st.Backends {
						active += bs.Active
					}
					return active == 1
				}, 2*time.Second, 2*time.Millisecond)
			}
			if alg == netsvc.LeastConn {
				require.Zero(t, counts[busy], "least-connections sends short connections to the idle backend")
				require.Len(t, counts, 1)
			} else {
				require.Equal(t, 5, counts[busy], "round-robin ignores load")
			}
		})
	}
}

func TestKilledBackendTakenOut(t *testing.T) {
	b := newBalancer(t, nil)
	s1, s2, s3 := startServer(t, "a"), startServer(t, "b"), startServer(t, "c")
	addr := frontendWith(t, b, netsvc.Frontend{Name: "api"}, s1, s2, s3)
	ctx := context.Background()
	s3.kill()

	// Before the checks notice, a refused dial moves on to the next
	// backend: clients never see the dead one.
	for range 6 {
		c, name := dial(t, addr)
		require.NotEqual(t, "c", name)
		c.Close()
	}
	require.Eventually(t, func() bool {
		st, err := b.Status(ctx, "api")
		require.NoError(t, err)
		for _, bs := range st.Backends {
			if bs.Name == "c" {
				return !bs.Healthy && bs.LastError != ""
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "health checks mark the killed backend down")
	before := totalOf(t, b, "api", "c")
	counts := map[string]int{}
	for range 20 {
		c, name := dial(t, addr)
		c.Close()
		counts[name]++
	}
	require.Equal(t, map[string]int{"a": 10, "b": 10}, counts)
	require.Equal(t, before, totalOf(t, b, "api", "c"), "no connection went to the dead backend")

	// It comes back when it listens again on the same address.
	startServerOn(t, "c", s3.addr())
	require.Eventually(t, func() bool {
		st, _ := b.Status(ctx, "api")
		for _, bs := range st.Backends {
			if bs.Name == "c" {
				return bs.Healthy
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "rise brings it back")
}

func totalOf(t *testing.T, b *Balancer, frontend, name string) uint64 {
	st, err := b.Status(context.Background(), frontend)
	require.NoError(t, err)
	for _, bs := range st.Backends {
		if bs.Name == name {
			return bs.Total
		}
	}
	t.Fatalf("backend %s not in status", name)
	return 0
}

func TestRemovalDrains(t *testing.T) {
	b := newBalancer(t, nil)
	ctx := context.Background()
	s1, s2 := startServer(t, "a"), startServer(t, "b")
	addr := frontendWith(t, b, netsvc.Frontend{Name: "api", Algorithm: netsvc.LeastConn}, s1, s2)
	held, name := dial(t, addr)
	defer held.Close()
	removed := s1
	if name == "b" {
		removed = s2
	}
	require.NoError(t, b.RemoveBackend(ctx, "api", removed.addr()))

	st, err := b.Status(ctx, "api")
	require.NoError(t, err)
	require.Len(t, st.Backends, 2)
	require.True(t, st.Backends[1].Draining)
	require.Equal(t, removed.addr(), st.Backends[1].Addr)
	require.EqualValues(t, 1, st.Backends[1].Active)

	// The established connection keeps working...
	held.echo(t, "still here")
	// ...and no new connection goes to the removed backend.
	for range 5 {
		c, n := dial(t, addr)
		require.NotEqual(t, name, n)
		c.Close()
	}
	held.echo(t, "still here 2")
	held.Close()
	require.Eventually(t, func() bool {
		st, _ := b.Status(ctx, "api")
		return len(st.Backends) == 1
	}, 2*time.Second, 5*time.Millisecond, "a drained backend leaves the status")
}

func TestDrainTimeoutClosesConnections(t *testing.T) {
	b := newBalancer(t, nil)
	ctx := context.Background()
	s1 := startServer(t, "a")
	addr := frontendWith(t, b, netsvc.Frontend{Name: "api", DrainTimeout: 100 * time.Millisecond}, s1)
	held, _ := dial(t, addr)
	defer held.Close()
	require.NoError(t, b.SetBackends(ctx, "api", nil))
	held.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := held.r.ReadString('\n')
	require.ErrorIs(t, err, io.EOF, "the drain timeout closes the connection")
}

func TestHalfCloseAndIdleTimeout(t *testing.T) {
	b := newBalancer(t, nil)
	// A backend that reads everything, then answers with the byte count.
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
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "%d", n)
			}()
		}
	}()
	ctx := context.Background()
	require.NoError(t, b.EnsureFrontend(ctx, netsvc.Frontend{Name: "hc", Listen: "127.0.0.1:0", IdleTimeout: time.Second, Health: fastHealth}))
	require.NoError(t, b.AddBackend(ctx, "hc", netsvc.Backend{Addr: ln.Addr().String()}))
	st, _ := b.Status(ctx, "hc")

	c, err := net.Dial("tcp", st.Listen)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(make([]byte, 100000))
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.Equal(t, "100000", string(got))

	// A silent connection is closed after the idle timeout.
	idle, err := net.Dial("tcp", st.Listen)
	require.NoError(t, err)
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err = idle.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	require.Greater(t, time.Since(start), 900*time.Millisecond)
}

func TestHTTPHealthCheck(t *testing.T) {
	b := newBalancer(t, nil)
	ctx := context.Background()
	var mu sync.Mutex
	code := http.StatusOK
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(code)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hc := fastHealth
	hc.HTTPPath = "/healthz"
	require.NoError(t, b.EnsureFrontend(ctx, netsvc.Frontend{Name: "h", Listen: "127.0.0.1:0", Health: hc}))
	require.NoError(t, b.AddBackend(ctx, "h", netsvc.Backend{Addr: ln.Addr().String()}))
	healthy := func() bool {
		st, _ := b.Status(ctx, "h")
		return st.Backends[0].Healthy
	}
	time.Sleep(100 * time.Millisecond)
	require.True(t, healthy())
	mu.Lock()
	code = http.StatusServiceUnavailable
	mu.Unlock()
	require.Eventually(t, func() bool { return !healthy() }, 3*time.Second, 10*time.Millisecond)
	st, _ := b.Status(ctx, "h")
	require.Contains(t, st.Backends[0].LastError, "Service Unavailable")
	mu.Lock()
	code = http.StatusOK
	mu.Unlock()
	require.Eventually(t, healthy, 3*time.Second, 10*time.Millisecond)
}

func TestRestartKeepsFrontendsAndBackends(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lb.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	b, err := New(ctx, st, nil)
	require.NoError(t, err)
	s1, s2 := startServer(t, "a"), startServer(t, "b")
	addr := frontendWith(t, b, netsvc.Frontend{Name: "api"}, s1, s2)
	require.NoError(t, b.Close())
	require.NoError(t, st.Close())
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "closed balancer no longer listens")

	st2, err := bolt.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st2.Close() })
	b2 := newBalancer(t, st2)
	require.Equal(t, []string{"api"}, b2.Frontends())
	status, err := b2.Status(ctx, "api")
	require.NoError(t, err)
	require.Equal(t, addr, status.Listen, "same address, even though it was picked with :0")
	require.Len(t, status.Backends, 2)
	seen := map[string]bool{}
	for range 4 {
		c, name := dial(t, addr)
		c.Close()
		seen[name] = true
	}
	require.Equal(t, map[string]bool{"a": true, "b": true}, seen)
}

func TestNoHealthyBackendClosesClient(t *testing.T) {
	b := newBalancer(t, nil)
	addr := frontendWith(t, b, netsvc.Frontend{Name: "empty"})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

func TestValidation(t *testing.T) {
	b := newBalancer(t, nil)
	ctx := context.Background()
	for _, f := range []netsvc.Frontend{
		{Name: "", Listen: "127.0.0.1:0"},
		{Name: "a/b", Listen: "127.0.0.1:0"},
		{Name: "x", Listen: "nope"},
		{Name: "x", Listen: "127.0.0.1:0", Algorithm: "random"},
		{Name: "x", Listen: "127.0.0.1:0", Health: netsvc.HealthCheck{HTTPPath: "healthz"}},
	} {
		require.ErrorIs(t, b.EnsureFrontend(ctx, f), netsvc.ErrInvalid, "%+v", f)
	}
	require.ErrorIs(t, b.AddBackend(ctx, "missing", netsvc.Backend{Addr: "127.0.0.1:1"}), netsvc.ErrNotFound)
	require.NoError(t, b.EnsureFrontend(ctx, netsvc.Frontend{Name: "x", Listen: "127.0.0.1:0"}))
	require.ErrorIs(t, b.AddBackend(ctx, "x", netsvc.Backend{Addr: "no-port"}), netsvc.ErrInvalid)
	require.ErrorIs(t, b.SetBackends(ctx, "x", []netsvc.Backend{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:1"}}), netsvc.ErrInvalid)
	_, err := b.Status(ctx, "missing")
	require.ErrorIs(t, err, netsvc.ErrNotFound)
	require.NoError(t, b.DeleteFrontend(ctx, "x"))
	require.ErrorIs(t, b.DeleteFrontend(ctx, "x"), netsvc.ErrNotFound)
}

// The balancer is L4: TLS passes through untouched, and the client
// verifies the backend's own certificate end to end.
func TestTLSPassthrough(t *testing.T) {
	b := newBalancer(t, nil)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s", r.TLS.ServerName)
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	require.NoError(t, b.EnsureFrontend(ctx, netsvc.Frontend{Name: "tls", Listen: "127.0.0.1:0", Health: fastHealth}))
	require.NoError(t, b.AddBackend(ctx, "tls", netsvc.Backend{Addr: srv.Listener.Addr().String()}))
	st, err := b.Status(ctx, "tls")
	require.NoError(t, err)

	client := srv.Client() // trusts only the backend's certificate
	tr := client.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", st.Listen)
	}
	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "tls ", string(body)[:4])
	require.NotNil(t, resp.TLS)
	require.Equal(t, srv.Certificate().Raw, resp.TLS.PeerCertificates[0].Raw, "the client saw the backend's certificate")
}
