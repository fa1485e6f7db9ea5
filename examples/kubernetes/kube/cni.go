package kube

import (
	"context"
	"fmt"

	"github.com/masonops/mason/role"
)

// CNI writes the hard way's bridge and loopback network configurations for
// the node's pod subnet; the plugins are Debian's
// (containernetworking-plugins, in /usr/lib/cni).
type CNI struct{}

// CNIIn is the node's subnet.
type CNIIn struct {
	Subnet role.Same[PodSubnetOut]
}

// CNIOut is the configured subnet.
type CNIOut struct {
	Subnet string
	Files  []string
}

// Meta implements role.Role.
func (CNI) Meta() role.Meta {
	return role.Meta{Name: "kube-cni", Version: "2", Doc: "configures the bridge and loopback CNI networks"}
}

// Run implements role.Role.
func (CNI) Run(ctx context.Context, rc *role.Context, in CNIIn) (CNIOut, error) {
	subnet := in.Subnet.Value.Subnet.String()
	bridge := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "bridge",
  "type": "bridge",
  "bridge": "cni0",
  "isGateway": true,
  "ipMasq": true,
  "ipam": {
    "type": "host-local",
    "ranges": [[{"subnet": "%s"}]],
    "routes": [{"dst": "0.0.0.0/0"}]
  }
}
`, subnet)
	loopback := `{
  "cniVersion": "1.1.0",
  "name": "lo",
  "type": "loopback"
}
`
	// The node forwards for its pods and for NodePorts whose pods run
	// elsewhere, also before its first pod (whose bridge would enable it).
	// Both settings are the node's own network namespace's in a lab.
	const sysctls = "net.ipv4.ip_forward = 1\n"
	if err := rc.WriteFile(ctx, "/etc/sysctl.d/kubernetes.conf", []byte(sysctls), 0o644); err != nil {
		return CNIOut{}, err
	}
	if _, err := rc.Exec(ctx, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return CNIOut{}, fmt.Errorf("enabling forwarding on %s: %w", rc.Node().Name, err)
	}
	files := []string{CNIConfDir + "/10-bridge.conf", CNIConfDir + "/99-loopback.conf"}
	for i, data := range []string{bridge, loopback} {
		if err := rc.WriteFile(ctx, files[i], []byte(data), 0o644); err != nil {
			return CNIOut{}, err
		}
	}
	return CNIOut{Subnet: subnet, Files: files}, nil
}
