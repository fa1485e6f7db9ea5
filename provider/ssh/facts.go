package ssh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
	cmd := provider.Command{Args: []string{"sh", "-c", factsScript}, Timeout: 30 * time.Second}
	res, err := n.Transport.Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("read facts of %s: %w", c.host.Name, err)
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || v == "" {
			continue
		}
		switch k {
		case "mac":
			if mac, err := net.ParseMAC(v); err == nil {
				n.MACs = append(n.MACs, mac)
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
	if n.Facts["os_id"] != "" {
		n.Image.ID = n.Facts["os_id"] + "-" + n.Facts["os_version"]
	}
	return n, nil
}

// factsScript prints key=value lines about the machine; every probe is
// optional.
const factsScript = `echo "nproc=$(nproc 2>/dev/null)"
echo "memkb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo 2>/dev/null)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_name=$PRETTY_NAME"; fi
echo "hostname=$(hostname 2>/dev/null || uname -n)"
echo "kernel=$(uname -r)"
ip -o link 2>/dev/null | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/mac=\1/p'
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
