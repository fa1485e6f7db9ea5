package ssh

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/masonops/mason/provider"
)

// Dial reaches a machine outside the inventory's hosts (how a VM made by
// another provider gets its transport) with the same keys and host key
// policy.
func TestDialOutsideInventory(t *testing.T) {
	ctx := ctxT(t)
	l := newLab(t)
	_, client := newKey(t)
	m := startMachine(t, l, "vm-1", client.PublicKey(), []string{"ec2-user"}, true)
	inv := openInventory(t, Options{Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t, m)})

	tr, user, err := inv.Dial(ctx, Host{Addr: m.node.InterfaceAddr.String()})
	require.NoError(t, err)
	require.Equal(t, "ec2-user", user, "users are probed in order")
	res, err := tr.Run(ctx, provider.Command{Args: []string{"hostname"}})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode)
	require.Equal(t, "vm-1\n", string(res.Stdout))

	require.NoError(t, inv.Close())
	_, err = tr.Run(ctx, provider.Command{Args: []string{"true"}})
	require.Error(t, err, "Close closes dialed connections too")

	// An unknown host key is refused exactly as for inventory hosts.
	other := openInventory(t, Options{Signers: []gossh.Signer{client}, KnownHosts: knownHostsFile(t)})
	_, _, err = other.Dial(ctx, Host{Addr: m.node.InterfaceAddr.String(), Users: []string{"ec2-user"}})
	var hk *HostKeyError
	require.True(t, errors.As(err, &hk), "got %v", err)
}
