package vsphere

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/masonops/mason/provider"
)

// VMInfo is the vSphere side of a node, reached with [provider.Node.As]:
//
//	var info *vsphere.VMInfo
//	if n.As(&info) { fmt.Println(info.Ref, info.InstanceUUID) }
type VMInfo struct {
	// Ref is the VM's managed object reference ("vm-42").
	Ref types.ManagedObjectReference
	// VMName is the VM's name in the inventory.
	VMName string
	// Folder is the inventory path of the deployment folder.
	Folder string
	// InstanceUUID is the identity the driver derived from the node ID.
	InstanceUUID string
	// PowerState is the VM's power state.
	PowerState types.VirtualMachinePowerState
	// LinkedClone reports whether the VM is a linked clone of a snapshot.
	LinkedClone bool
	// ToolsStatus is VMware Tools' running status as vCenter reports it.
	ToolsStatus string
}

// node normalizes a VM into a provider.Node.
func (d *Driver) node(ctx context.Context, vm *mo.VirtualMachine) (*provider.Node, error) {
	kv := extra(vm)
	n := &provider.Node{
		ID:       kv[keyID],
		Name:     kv[keyName],
		Provider: DriverName,
		Location: d.dc.InventoryPath,
		Login:    provider.Login{User: kv[keyLogin]},
		Image:    provider.Image{ID: kv[keyImage], Name: kv[keyImageN]},
		Labels:   map[string]string{},
		Facts:    map[string]string{},
	}
	for k, v := range kv {
		if l, ok := strings.CutPrefix(k, keyLabel); ok {
			n.Labels[l] = v
		}
	}
	switch vm.Runtime.PowerState {
	case types.VirtualMachinePowerStatePoweredOn:
		n.State = provider.StateRunning
	case types.VirtualMachinePowerStatePoweredOff, types.VirtualMachinePowerStateSuspended:
		n.State = provider.StateStopped
		if kv[keyPhase] != "ready" {
			n.State = provider.StatePending
		}
	}
	n.PrivateAddrs, n.PublicAddrs = addresses(vm)
	n.InterfaceAddr = provider.PickInterfaceAddr(n.PrivateAddrs, n.PublicAddrs, d.cfg.InterfacePrefixes...)

	info := &VMInfo{
		Ref:         vm.Self,
		VMName:      vm.Name,
		Folder:      d.folder.InventoryPath,
		PowerState:  vm.Runtime.PowerState,
		LinkedClone: kv[keyClone] == "linked",
	}
	if vm.Config != nil {
		info.InstanceUUID = vm.Config.InstanceUuid
		hw := vm.Config.Hardware
		n.Flavor = provider.Flavor{VCPUs: int(hw.NumCPU), RAMMiB: int(hw.MemoryMB)}
		var diskKiB int64
		for _, dev := range object.VirtualDeviceList(hw.Device) {
			switch x := dev.(type) {
			case *types.VirtualDisk:
				diskKiB += x.CapacityInKB
			case types.BaseVirtualEthernetCard:
				if mac, err := net.ParseMAC(x.GetVirtualEthernetCard().MacAddress); err == nil {
					n.MACs = append(n.MACs, mac)
				}
			}
		}
		n.Flavor.DiskGiB = int((diskKiB + 1<<20 - 1) >> 20)
	}
	if g := vm.Guest; g != nil {
		info.ToolsStatus = g.ToolsRunningStatus
		for k, v := range map[string]string{
			"guest.hostname": g.HostName, "guest.os": g.GuestFullName, "guest.tools": g.ToolsRunningStatus,
		} {
			if v != "" {
				n.Facts[k] = v
			}
		}
	}
	n.Facts["vsphere.clone"] = kv[keyClone]
	n.Facts["vsphere.vm"] = vm.Self.Value
	n.Extra = info

	if d.cfg.Transport != nil && n.InterfaceAddr.IsValid() && n.State == provider.StateRunning {
		t, err := d.cfg.Transport(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("transport to node %s at %s: %w", n.ID, n.InterfaceAddr, err)
		}
		n.Transport = t
	}
	return n, nil
}

// addresses returns the VM's guest addresses, private ones first, in the
// order of its network cards.
func addresses(vm *mo.VirtualMachine) (private, public []netip.Addr) {
	if vm.Guest == nil {
		return nil, nil
	}
	seen := map[netip.Addr]bool{}
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil || seen[a] || a.IsLoopback() || a.IsUnspecified() {
			return
		}
		seen[a] = true
		if a.IsPrivate() || a.IsLinkLocalUnicast() {
			private = append(private, a)
		} else {
			public = append(public, a)
		}
	}
	for _, nic := range vm.Guest.Net {
		if nic.IpConfig != nil {
			for _, ip := range nic.IpConfig.IpAddress {
				add(ip.IpAddress)
			}
		}
		for _, ip := range nic.IpAddress {
			add(ip)
		}
	}
	add(vm.Guest.IpAddress)
	return private, public
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
