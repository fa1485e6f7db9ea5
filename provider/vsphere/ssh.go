package vsphere

import (
	"context"
	"fmt"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/ssh"
)

// SSHTransport returns a Config.Transport that reaches each VM over SSH
// through inv: the VM's interface address, its login user (the one the
// cloud-init data created) and then inv's fallbacks, with inv's keys and
// known_hosts policy.
//
//	inv, _ := ssh.Open(ssh.Options{Signers: keys, KnownHosts: "known_hosts", TrustOnFirstUse: true})
//	cfg.Transport = vsphere.SSHTransport(inv)
func SSHTransport(inv *ssh.Inventory) func(ctx context.Context, n *provider.Node) (provider.Transport, error) {
	return func(ctx context.Context, n *provider.Node) (provider.Transport, error) {
		host := ssh.Host{Name: n.Name, Addr: n.InterfaceAddr.String(), Users: n.Login.Candidates()}
		t, _, err := inv.Dial(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("vsphere: node %s: %w", n.Name, err)
		}
		return t, nil
	}
}
