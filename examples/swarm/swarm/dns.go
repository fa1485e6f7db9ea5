package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// DNS keeps the deployment's zone in the network services daemon: an A
// record for every node of the swarm (its input is every member's output,
// so a node that joins or leaves changes it, and nothing else does), one for the service node
// (ns, and its own name), and one for the service's name pointing at the
// load balancer. A records of the zone that no longer name a node are
// deleted: the zone is the deployment's own.
type DNS struct{}

// DNSIn is the daemon, the nodes and the load balancer.
type DNSIn struct {
	Daemon role.One[NetsvcdOut]
	Nodes  role.All[MemberOut]
	LB     role.One[LBOut]
	Issuer role.Uses[pki.Issuer]
}

// DNSOut is the zone as the role left it.
type DNSOut struct {
	Zone   string
	Server string // IP:53
	// Records maps each name (relative to the zone) to its address.
	Records map[string]string
}

// Meta implements role.Role.
func (DNS) Meta() role.Meta {
	return role.Meta{Name: "swarm-dns", Version: "1", Scope: role.ScopeService,
		Doc: "keeps an A record per node and one for the service in the deployment's zone"}
}

// Run implements role.Role.
func (DNS) Run(ctx context.Context, rc *role.Context, in DNSIn) (DNSOut, error) {
	d := in.Daemon.Value
	cli, err := netsvcClient(ctx, in.Issuer.Value, d)
	if err != nil {
		return DNSOut{}, err
	}
	defer cli.Close()
	want := map[string]string{"ns": d.IP, d.Node: d.IP}
	for _, n := range in.Nodes {
		want[n.Node] = n.Value.EngineIP
	}
	lbHost, _, err := splitHost(in.LB.Value.Listen)
	if err != nil {
		return DNSOut{}, err
	}
	want[in.LB.Value.Frontend] = lbHost
	have, err := cli.Records(ctx, d.Zone)
	if err != nil {
		return DNSOut{}, fmt.Errorf("zone %s: %w", d.Zone, err)
	}
	current := map[string]string{}
	for _, rs := range have {
		if rs.Type != netsvc.TypeA {
			continue
		}
		name := strings.TrimSuffix(strings.TrimSuffix(rs.Name, "."), "."+strings.TrimSuffix(d.Zone, "."))
		current[name] = strings.Join(rs.Values, ",")
		if _, ok := want[name]; !ok {
			if err := cli.Delete(ctx, d.Zone, name, netsvc.TypeA); err != nil {
				return DNSOut{}, err
			}
			rc.Log().Info("deleted a DNS record", "name", name, "zone", d.Zone)
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if current[name] == want[name] {
			continue
		}
		if err := cli.Upsert(ctx, d.Zone, netsvc.RecordSet{Name: name, Type: netsvc.TypeA, TTL: 30, Values: []string{want[name]}}); err != nil {
			return DNSOut{}, fmt.Errorf("record %s.%s: %w", name, d.Zone, err)
		}
	}
	return DNSOut{Zone: d.Zone, Server: d.DNS, Records: want}, nil
}

// Check reports drift when a record is missing or differs.
func (DNS) Check(ctx context.Context, rc *role.Context, in DNSIn, last DNSOut) (string, error) {
	cli, err := netsvcClient(ctx, in.Issuer.Value, in.Daemon.Value)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	var have []netsvc.RecordSet
	if err := steady(ctx, func(ctx context.Context) (err error) { have, err = cli.Records(ctx, last.Zone); return err }); err != nil {
		return "zone " + last.Zone + ": " + err.Error(), nil
	}
	got := map[string]string{}
	for _, rs := range have {
		if rs.Type == netsvc.TypeA {
			got[strings.TrimSuffix(strings.TrimSuffix(rs.Name, "."), "."+strings.TrimSuffix(last.Zone, "."))] = strings.Join(rs.Values, ",")
		}
	}
	for name, ip := range last.Records {
		if got[name] != ip {
			return fmt.Sprintf("record %s.%s is %q, not %q", name, last.Zone, got[name], ip), nil
		}
	}
	return "", nil
}
