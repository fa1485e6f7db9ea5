package ssh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/masonops/mason/provider"
)

// describe builds the node from what the machine reports about itself.
func (inv *Inventory) describe(ctx context.Context, c *claim, user string, users []string) (*provider.Node, error) {
	addr, err := resolve(ctx, c.host.Addr)
	if err != nil {
		return nil, err
	}
	var fallbacks []string
	for _, u := range users {
		if u != user {
			fallbacks = append(fallbacks, u)
		}
	}
	n := &provider.Node{
		ID: c.id, Name: c.spec.Name, Provider: DriverName, Location: c.host.Addr, State: provider.StateRunning,
		Login:     provider.Login{User: user, Fallbacks: fallbacks},
		Labels:    map[string]string{},
		Facts:     map[string]string{},
		Transport: &Transport{conn: c.conn},
		Extra:     &c.host,
	}
	if addr.IsPrivate() || addr.IsLoopback() {
		n.PrivateAddrs = []netip.Addr{addr}
	} else {
		n.PublicAddrs = []netip.Addr{addr}
	}
	n.InterfaceAddr = provider.PickInterfaceAddr(n.PrivateAddrs, n.PublicAddrs)
	if !n.InterfaceAddr.IsValid() {
		n.InterfaceAddr = addr
	}
	for k, v := range c.host.Labels {
		n.Labels[k] = v
	}
	for k, v := range c.spec.Labels {
		n.Labels[k] = v
	}
	facts := c.conn.facts // kept by a holder with the connection
	if facts == "" {
		cmd := provider.Command{Args: []string{"sh", "-c", factsScript}, Timeout: 30 * time.Second}
		res, err := n.Transport.Run(ctx, cmd)
		if err != nil {
			return nil, fmt.Errorf("read facts of %s: %w", c.host.Name, err)
		}
		facts = string(res.Stdout)
		if inv.hold != nil {
			inv.hold.putFacts(c.conn, facts)
		}
	}
	type indexedMAC struct {
		index int
		mac   net.HardwareAddr
	}
	var macs []indexedMAC
	for _, line := range strings.Split(facts, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || v == "" {
			continue
		}
		switch k {
		case "mac":
			idx, addr, _ := strings.Cut(v, " ")
			i, err1 := strconv.Atoi(idx)
			mac, err2 := net.ParseMAC(addr)
			if err1 == nil && err2 == nil {
				macs = append(macs, indexedMAC{i, mac})
			}
		case "nproc":
			n.Flavor.VCPUs, _ = strconv.Atoi(v)
		case "memkb":
			kb, _ := strconv.Atoi(v)
			n.Flavor.RAMMiB = kb / 1024
		case "os_name":
			n.Image.Name = v
			n.Facts[k] = v
		default:
			n.Facts[k] = v
		}
	}
	sort.Slice(macs, func(i, j int) bool { return macs[i].index < macs[j].index })
	for _, m := range macs {
		n.MACs = append(n.MACs, m.mac)
	}
	if n.Facts["os_id"] != "" {
		n.Image.ID = n.Facts["os_id"] + "-" + n.Facts["os_version"]
	}
	return n, nil
}

// factsScript prints key=value lines about the machine; every probe is
// optional. Apart from ip(8) for the MACs (/sys may belong to another
// network namespace) it uses only shell builtins and reads of /proc: on a
// busy machine every fork and exec counts, and this runs once per node on
// every connect. nproc counts the CPUs this process may run on (as
// nproc(1) does); MACs are the Ethernet interfaces' addresses, tagged with
// their interface index.
const factsScript = `set -f
cpus=0 list=
while IFS=': 	' read -r k v; do [ "$k" = Cpus_allowed_list ] && list=$v; done </proc/self/status
IFS=,
for r in $list; do
	case $r in
	*-*) cpus=$((cpus + ${r#*-} - ${r%-*} + 1)) ;;
	?*) cpus=$((cpus + 1)) ;;
	esac
done
unset IFS
[ "$cpus" -gt 0 ] && echo "nproc=$cpus"
while read -r k v _; do [ "$k" = MemTotal: ] && echo "memkb=$v" && break; done </proc/meminfo
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_name=$PRETTY_NAME"; fi
read -r h </proc/sys/kernel/hostname && echo "hostname=$h"
read -r k </proc/sys/kernel/osrelease && echo "kernel=$k"
ip -o link 2>/dev/null | while read -r i _ rest; do
	case $rest in *link/ether\ *) m=${rest#*link/ether }; echo "mac=${i%:} ${m%% *}" ;; esac
done
exit 0`

func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(as) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	return as[0].Unmap(), nil
}
