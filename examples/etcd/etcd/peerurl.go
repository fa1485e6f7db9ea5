package etcd

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/masonops/mason/role"
)

// PeerURL computes a member's URLs from its node's interface address. It
// needs no shell; its output is what the cluster links on.
type PeerURL struct{}

// PeerURLOut is one member's identity in the cluster.
type PeerURLOut struct {
	Name      string
	PeerURL   string // https://10.200.0.2:2380
	ClientURL string // https://10.200.0.2:2379
}

// Meta implements role.Role.
func (PeerURL) Meta() role.Meta {
	return role.Meta{Name: "etcd-peer-url", Version: "1", Doc: "computes a member's peer and client URLs"}
}

// Run implements role.Role.
func (PeerURL) Run(_ context.Context, rc *role.Context, _ struct{}) (PeerURLOut, error) {
	n := rc.Node()
	if !n.InterfaceAddr.IsValid() {
		return PeerURLOut{}, fmt.Errorf("node %s has no interface address", n.Name)
	}
	ip := n.InterfaceAddr.String()
	return PeerURLOut{
		Name:      n.Name,
		PeerURL:   "https://" + net.JoinHostPort(ip, strconv.Itoa(PeerPort)),
		ClientURL: "https://" + net.JoinHostPort(ip, strconv.Itoa(ClientPort)),
	}, nil
}
