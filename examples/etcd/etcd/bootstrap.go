package etcd

import (
	"context"

	"github.com/masonops/mason/role"
)

// Bootstrap records which members founded the cluster. It runs once: after
// it has succeeded mason never re-runs it on its own, so when members are
// added later its output still names the founders, and the new members know
// they must join an existing cluster instead of starting a new one. It
// touches no node, so a crash while it runs leaves nothing to inspect: it is
// simply run again (a destructive role would be held).
type Bootstrap struct{}

// BootstrapIn is every member's URLs at the time the cluster is founded.
type BootstrapIn struct {
	Peers role.All[PeerURLOut]
	Token string `attr:"etcd.cluster_token"`
}

// BootstrapOut names the founding members.
type BootstrapOut struct {
	Founders []string
	Token    string
}

// Meta implements role.Role.
func (Bootstrap) Meta() role.Meta {
	return role.Meta{Name: "etcd-bootstrap", Version: "1", Scope: role.ScopeService, Once: true,
		Doc: "fixes the founding member set; members added later join with member-add"}
}

// Run implements role.Role.
func (Bootstrap) Run(_ context.Context, _ *role.Context, in BootstrapIn) (BootstrapOut, error) {
	return BootstrapOut{Founders: in.Peers.Nodes(), Token: in.Token}, nil
}
