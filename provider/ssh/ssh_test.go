package ssh

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/providertest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestContract(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m0 := startMachine(t, l, "metal-0", client.PublicKey(), []string{"root"}, true)
	m1 := startMachine(t, l, "metal-1", client.PublicKey(), []string{"root"}, true)
	inv := openInventory(t, Options{
		Hosts:      []Host{hostOf(m0, "root"), hostOf(m1, "root")},
		Signers:    []gossh.Signer{client},
		KnownHosts: knownHostsFile(t, m0, m1),
	})
	providertest.Run(t, providertest.Harness{
		Provider: inv.Provider(),
		Spec: func(i int) provider.NodeSpec {
			return provider.NodeSpec{ID: []string{"m0", "m1"}[i], Name: []string{m0.name, m1.name}[i], Labels: map[string]string{"rack": "r1"}}
		},
	})
}

func TestUserProbing(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	// Only ec2-user accepts our key here; ubuntu does not exist, root has
	// no authorized key.
	m := startMachine(t, l, "aws-like", client.PublicKey(), []string{"ec2-user"}, true)
	kh := knownHostsFile(t, m)
	tests := []struct {
		name     string
		host     Host
		login    provider.Login
		wantUser string
		wantErr  string
	}{
		{"default candidates", hostOf(m), provider.Login{}, "ec2-user", ""},
		{"host's own list", hostOf(m, "admin", "ec2-user"), provider.Login{}, "ec2-user", ""},
		{"spec overrides", hostOf(m), provider.Login{User: "root", Fallbacks: []string{"ubuntu"}}, "", "none of the users root, ubuntu accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			inv := openInventory(t, Options{Hosts: []Host{tc.host}, Signers: []gossh.Signer{client}, KnownHosts: kh, ConnectRetry: 5 * time.Second})
			n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "probe", Name: m.name, Login: tc.login})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantUser, n.Login.User)
			require.NotContains(t, n.Login.Fallbacks, tc.wantUser)
			res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"id", "-un"}})
			require.NoError(t, err)
			require.Equal(t, tc.wantUser+"\n", string(res.Stdout))
		})
	}
}

func TestHostKeyVerification(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "guarded", client.PublicKey(), []string{"root"}, true)
	other := startMachine(t, l, "other", client.PublicKey(), []string{"root"}, false)
	empty := knownHostsFile(t)
	// A known_hosts file that names m's address with another machine's key.
	changed := knownHostsFile(t, machine{name: m.name, node: m.node, hostKey: other.hostKey})

	tests := []struct {
		name        string
		knownHosts  string
		tofu        bool
		wantChanged *bool
	}{
		{"unknown key refused", empty, false, ptr(false)},
		{"changed key refused", changed, false, ptr(true)},
		{"changed key refused even with TOFU", changed, true, ptr(true)},
		{"known key accepted", knownHostsFile(t, m), false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			before, err := os.ReadFile(tc.knownHosts)
			require.NoError(t, err)
			inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: tc.knownHosts, TrustOnFirstUse: tc.tofu})
			began := time.Now()
			_, err = inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
			if tc.wantChanged == nil {
				require.NoError(t, err)
				return
			}
			var hk *HostKeyError
			require.ErrorAs(t, err, &hk)
			require.Equal(t, *tc.wantChanged, hk.Changed)
			require.Equal(t, gossh.FingerprintSHA256(m.hostKey), hk.Fingerprint)
			require.Less(t, time.Since(began), 20*time.Second, "host key failures are not retried")
			after, err := os.ReadFile(tc.knownHosts)
			require.NoError(t, err)
			require.Equal(t, string(before), string(after), "a refused key is not recorded")
			list, err := inv.Provider().List(ctx)
			require.NoError(t, err)
			require.Empty(t, list)
		})
	}

	t.Run("trust on first use records the key", func(t *testing.T) {
		ctx := ctxT(t)
		kh := knownHostsFile(t)
		inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh, TrustOnFirstUse: true})
		_, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
		require.NoError(t, err)
		b, err := os.ReadFile(kh)
		require.NoError(t, err)
		require.Equal(t, knownhosts.Line([]string{knownhosts.Normalize(m.addr())}, m.hostKey)+"\n", string(b))

		// Afterwards the recorded key is enforced without TOFU.
		strict := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh})
		_, err = strict.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
		require.NoError(t, err)
	})
}

func ptr[T any](v T) *T { return &v }

func TestWrongKeyRefused(t *testing.T) {
	l := newLab(t)
	_, authorized := newKey(t)
	_, stranger := newKey(t)
	m := startMachine(t, l, "locked", authorized.PublicKey(), []string{"root"}, true)
	ctx := ctxT(t)
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root", "ubuntu")}, Signers: []gossh.Signer{stranger}, KnownHosts: knownHostsFile(t, m)})
	began := time.Now()
	_, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
	require.ErrorContains(t, err, "none of the users root, ubuntu accepted our keys")
	require.Less(t, time.Since(began), 20*time.Second, "authentication failures are not retried")
	require.NotContains(t, err.Error(), "PRIVATE KEY")
	_, err = inv.Provider().Get(ctx, "n")
	require.ErrorIs(t, err, provider.ErrNotFound)
}

func TestConnectionReuse(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "busy", client.PublicKey(), []string{"root"}, true)
	ctx := ctxT(t)
	inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m)})
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
	require.NoError(t, err)
	for range 10 {
		res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"true"}})
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitCode)
	}
	// sshd logs one "Accepted publickey" per connection (every probe and
	// every reconnect would add one).
	log := sh(t, ctx, m.node, "cat /var/log/mason-test-sshd.log")
	require.Equal(t, 1, strings.Count(log, "Accepted publickey"), "one connection for all commands:\n%s", log)

	// A connection broken underneath is replaced transparently.
	sh(t, ctx, m.node, "pkill -f '^sshd: root@' || true")
	require.Eventually(t, func() bool {
		res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"echo", "back"}})
		return err == nil && string(res.Stdout) == "back\n"
	}, 20*time.Second, 100*time.Millisecond)
	log = sh(t, ctx, m.node, "cat /var/log/mason-test-sshd.log")
	require.Equal(t, 2, strings.Count(log, "Accepted publickey"), "reconnected once")

	// Deleting the node releases the host and its connection only.
	require.NoError(t, inv.Provider().Delete(ctx, "n"))
	_, err = n.Transport.Run(ctx, provider.Command{Args: []string{"true"}})
	require.Error(t, err)
	again, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n2", Name: m.name})
	require.NoError(t, err, "a released host can be claimed again")
	_, err = inv.Provider().Create(ctx, provider.NodeSpec{ID: "n3", Name: m.name})
	require.ErrorContains(t, err, "already held by node n2")
	require.Equal(t, again.InterfaceAddr, n.InterfaceAddr)
}

func TestConnectRetry(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	late := startMachine(t, l, "late", client.PublicKey(), []string{"root"}, false)
	kh := knownHostsFile(t, late)

	t.Run("waits for a machine that comes up", func(t *testing.T) {
		ctx := ctxT(t)
		inv := openInventory(t, Options{Hosts: []Host{hostOf(late, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh, ConnectRetry: 30 * time.Second})
		time.AfterFunc(time.Second, func() { startSSHD(t, late) })
		n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: late.name})
		require.NoError(t, err)
		require.Equal(t, "root", n.Login.User)
	})

	t.Run("gives up after ConnectRetry", func(t *testing.T) {
		ctx := ctxT(t)
		closed := hostOf(late, "root")
		closed.Port = 2222 // nothing listens here
		inv := openInventory(t, Options{Hosts: []Host{closed}, Signers: []gossh.Signer{client}, KnownHosts: kh, ConnectRetry: time.Second})
		began := time.Now()
		_, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: late.name})
		require.ErrorContains(t, err, "connection refused")
		require.Less(t, time.Since(began), 15*time.Second)
	})

	t.Run("unknown host name", func(t *testing.T) {
		inv := openInventory(t, Options{Hosts: []Host{hostOf(late, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh})
		_, err := inv.Provider().Create(ctxT(t), provider.NodeSpec{ID: "n", Name: "nowhere"})
		require.ErrorContains(t, err, `no host named "nowhere"`)
	})
}

func TestOpenRequiresKnownHostsAndKeys(t *testing.T) {
	_, client := newKey(t)
	_, err := Open(Options{Signers: []gossh.Signer{client}})
	require.ErrorContains(t, err, "KnownHosts is required")
	_, err = Open(Options{KnownHosts: knownHostsFile(t)})
	require.ErrorContains(t, err, "Signers")
	_, err = Open(Options{Signers: []gossh.Signer{client}, KnownHosts: t.TempDir() + "/missing"})
	require.ErrorContains(t, err, "known_hosts")
	inv, err := Open(Options{Signers: []gossh.Signer{client}, KnownHosts: t.TempDir() + "/new/known_hosts", TrustOnFirstUse: true})
	require.NoError(t, err, "with TOFU a missing known_hosts file is created")
	require.NoError(t, inv.Close())
}

func TestKnownHostsWithOtherKeyType(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecPub, err := gossh.NewPublicKey(ecKey.Public())
	require.NoError(t, err)
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherPub, err := gossh.NewPublicKey(otherEC.Public())
	require.NoError(t, err)
	// The machine serves an ed25519 and an ECDSA host key.
	m := startMachine(t, l, "two-keys", client.PublicKey(), []string{"root"}, true, ecKey)

	t.Run("only the ed25519 key is known", func(t *testing.T) {
		// By default the client prefers ECDSA host keys; it must ask for
		// the type it can check instead of calling the key changed.
		inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m)})
		_, err := inv.Provider().Create(ctxT(t), provider.NodeSpec{ID: "n", Name: m.name})
		require.NoError(t, err)
	})
	t.Run("only the ECDSA key is known", func(t *testing.T) {
		kh := knownHostsFile(t, machine{name: m.name, node: m.node, hostKey: ecPub})
		inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh})
		_, err := inv.Provider().Create(ctxT(t), provider.NodeSpec{ID: "n", Name: m.name})
		require.NoError(t, err, "the server is asked for the key type known_hosts has")
	})
	t.Run("a different ECDSA key is known", func(t *testing.T) {
		kh := knownHostsFile(t, machine{name: m.name, node: m.node, hostKey: otherPub})
		inv := openInventory(t, Options{Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: kh})
		_, err := inv.Provider().Create(ctxT(t), provider.NodeSpec{ID: "n", Name: m.name})
		var hk *HostKeyError
		require.ErrorAs(t, err, &hk)
		require.True(t, hk.Changed)
		require.Equal(t, gossh.FingerprintSHA256(ecPub), hk.Fingerprint)
	})
}

func TestDeadConnectionDetected(t *testing.T) {
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "frozen", client.PublicKey(), []string{"root"}, true)
	ctx := ctxT(t)
	inv := openInventory(t, Options{
		Hosts: []Host{hostOf(m, "root")}, Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m),
		KeepAlive: 200 * time.Millisecond, ConnectTimeout: time.Second,
	})
	n, err := inv.Provider().Create(ctx, provider.NodeSpec{ID: "n", Name: m.name})
	require.NoError(t, err)

	ran := make(chan error, 1)
	go func() {
		_, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sleep", "600"}})
		ran <- err
	}()
	time.Sleep(300 * time.Millisecond)
	// Freeze the server side of our connection: it stops answering
	// without closing the TCP connection.
	sh(t, ctx, m.node, "pkill -STOP -f '^sshd: root@notty'")
	t.Cleanup(func() {
		_, _ = m.node.Transport.Run(context.Background(), provider.Command{Args: []string{"pkill", "-KILL", "-f", "^sshd: root@notty"}})
	})
	select {
	case err := <-ran:
		require.Error(t, err, "a command on a dead connection fails")
	case <-time.After(30 * time.Second):
		t.Fatal("a command on a dead connection hung past the keepalive timeout")
	}
	sh(t, ctx, m.node, "pkill -KILL -f '^sshd: root@notty'")
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"echo", "again"}})
	require.NoError(t, err, "the next command reconnects")
	require.Equal(t, "again\n", string(res.Stdout))
}
