package etcd

import (
	"fmt"
	"os"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Deployment binds the etcd roles to nodes: the authority, the operator's
// certificate, bootstrap and verification once for the deployment; peer
// URLs, certificates and members on every node.
func Deployment(name string, nodes ...*provider.Node) *graph.Deployment {
	d := graph.NewDeployment(name)
	// Declared keys give their defaults and doc to the plan and to `why`.
	if err := d.Attrs().Declare(ClusterToken, Domain, OperatorDir, Binary); err != nil {
		panic(err) // the keys above are well-formed; this cannot fail
	}
	members := d.Pool("members", nodes...)
	d.Bind(nil, role.Of(CA{}), role.Of(Operator{}), role.Of(Bootstrap{}), role.Of(Verify{}))
	d.Bind(members, role.Of(PeerURL{}), role.Of(MemberCert{}), role.Of(Member{}))
	return d
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}
