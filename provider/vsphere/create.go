package vsphere

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/masonops/mason/breaker"
	"github.com/masonops/mason/provider"
)

// ErrNoAddress is wrapped by the error Create returns when a powered-on
// node reports no address through VMware Tools before Config.IPTimeout.
var ErrNoAddress = errors.New("no IP address reported by VMware Tools")

// Create clones the node's VM from the template (or finds the one a
// previous attempt made), customizes it, powers it on and waits until
// VMware Tools reports its address. Every step checks what is already
// done, so calling Create again after any failure resumes where it
// stopped and never clones twice.
func (d *Driver) Create(ctx context.Context, spec provider.NodeSpec) (*provider.Node, error) {
	defer d.lock(spec.ID)()
	log := d.log.With("node", spec.ID)

	ipc, err := d.assignIP(ctx, spec)
	if err != nil {
		return nil, err
	}

	var vm *mo.VirtualMachine
	err = d.retry(ctx, "clone VM of node "+spec.ID, func(ctx context.Context) error {
		var err error
		vm, err = d.ensureVM(ctx, spec, log)
		return err
	})
	if err != nil {
		return nil, err
	}
	obj := object.NewVirtualMachine(d.client, vm.Self)

	if extra(vm)[keyPhase] == "cloned" && vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOff {
		err := d.retry(ctx, "customize VM "+vm.Name, func(ctx context.Context) error {
			return d.customize(ctx, obj, vm, spec, ipc, log)
		})
		if err != nil {
			return nil, err
		}
	}

	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		err := d.retry(ctx, "power on VM "+vm.Name, func(ctx context.Context) error {
			err := waitTask(ctx, "power on", func() (*object.Task, error) { return obj.PowerOn(ctx) })
			if isFault(err, &types.InvalidPowerState{}) {
				return nil // on already (an earlier attempt's task finished late)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		log.Info("powered on", "vm", vm.Name)
	}

	vm, err = d.waitAddress(ctx, vm, ipc, log)
	if err != nil {
		return nil, err
	}
	if extra(vm)[keyPhase] != "ready" {
		err := d.retry(ctx, "mark VM "+vm.Name+" ready", func(ctx context.Context) error {
			return d.setPhase(ctx, obj, "ready")
		})
		if err != nil {
			return nil, err
		}
		setExtra(vm, keyPhase, "ready")
	}
	return d.node(ctx, vm)
}

func (d *Driver) assignIP(ctx context.Context, spec provider.NodeSpec) (IPConfig, error) {
	if d.cfg.AssignIP == nil {
		return IPConfig{}, nil
	}
	ipc, err := d.cfg.AssignIP(ctx, spec)
	if err != nil {
		return IPConfig{}, fmt.Errorf("choose address of node %s: %w", spec.ID, err)
	}
	if ipc.Addr.IsValid() && !ipc.Addr.Addr().Is4() {
		return IPConfig{}, fmt.Errorf("address %s of node %s: fixed addresses must be IPv4 (guest customization); use DHCP for IPv6", ipc.Addr, spec.ID)
	}
	return ipc, nil
}

// ensureVM returns the node's VM, cloning it if it does not exist.
func (d *Driver) ensureVM(ctx context.Context, spec provider.NodeSpec, log *slog.Logger) (*mo.VirtualMachine, error) {
	vm, err := d.find(ctx, spec.ID)
	if err != nil || vm != nil {
		return vm, err
	}
	name := vmName(spec)
	tmplName := spec.Image.Name
	if tmplName == "" {
		tmplName = d.cfg.Template
	}
	if tmplName == "" {
		return nil, stop(fmt.Errorf("no template: set Config.Template (%s) or NodeSpec.Image.Name", EnvTemplate))
	}
	tmpl, err := d.finder.VirtualMachine(ctx, tmplName)
	if err != nil {
		var nf *find.NotFoundError
		var mf *find.MultipleFoundError
		if errors.As(err, &nf) || errors.As(err, &mf) {
			return nil, stop(fmt.Errorf("template %q (Config.Template or NodeSpec.Image.Name): %w", tmplName, err))
		}
		return nil, fmt.Errorf("template %q: %w", tmplName, err)
	}
	var t mo.VirtualMachine
	if err := property.DefaultCollector(d.client).RetrieveOne(ctx, tmpl.Reference(),
		[]string{"config.instanceUuid", "config.hardware.device", "snapshot", "resourcePool", "runtime.host"}, &t); err != nil {
		return nil, fmt.Errorf("read template %s: %w", tmpl.InventoryPath, err)
	}
	cs, linked, err := d.cloneSpec(ctx, spec, tmpl, &t)
	if err != nil {
		return nil, err
	}
	// A VM with the node's name but without its identity is what a clone
	// leaves when the controller died before the identity was applied.
	if vm, err := d.adopt(ctx, spec, name, cs.Config); err != nil || vm != nil {
		return vm, err
	}
	log.Info("cloning", "vm", name, "template", tmpl.InventoryPath, "linked", linked)
	task, err := tmpl.Clone(ctx, d.folder, name, cs)
	var info *types.TaskInfo
	if err == nil {
		info, err = task.WaitForResult(ctx, nil)
	}
	if err != nil {
		if isFault(err, &types.DuplicateName{}) {
			// Another controller is making (or made) this node.
			if vm, aerr := d.adopt(ctx, spec, name, cs.Config); aerr != nil || vm != nil {
				return vm, aerr
			}
			return nil, fmt.Errorf("a VM named %s appeared in %s while cloning it: %w", name, d.folder.InventoryPath, describe(err))
		}
		return nil, fmt.Errorf("clone %s to %s/%s: %w", tmpl.InventoryPath, d.folder.InventoryPath, name, describe(err))
	}
	if vm, err = d.find(ctx, spec.ID); err != nil || vm != nil {
		return vm, err
	}
	// Some vCenters (and vcsim) drop the clone spec's config; apply it.
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return nil, stop(fmt.Errorf("clone %s finished without a VM reference", name))
	}
	return d.applyIdentity(ctx, spec, ref, cs.Config)
}

// adopt finds the VM named name in the deployment folder. If it is this
// node's VM it returns it, applying the node's identity if it lacks it; if
// it belongs to another node it fails; if there is none it returns nil.
func (d *Driver) adopt(ctx context.Context, spec provider.NodeSpec, name string, cfg *types.VirtualMachineConfigSpec) (*mo.VirtualMachine, error) {
	child, err := d.childNamed(ctx, d.folder, name)
	if err != nil || child == nil {
		return nil, err
	}
	vm, err := d.props(ctx, child.Reference())
	if err != nil {
		return nil, err
	}
	switch id := extra(vm)[keyID]; {
	case id == spec.ID && vm.Config.InstanceUuid == d.instanceUUID(spec.ID):
		return vm, nil
	case id != "" && id != spec.ID:
		return nil, stop(fmt.Errorf("VM %s in %s belongs to node %s, not %s: rename or remove it", name, d.folder.InventoryPath, id, spec.ID))
	}
	d.log.Info("adopting VM left by an earlier attempt", "node", spec.ID, "vm", name)
	return d.applyIdentity(ctx, spec, vm.Self, cfg)
}

// applyIdentity reconfigures a fresh clone with the node's identity,
// size and cloud-init data.
func (d *Driver) applyIdentity(ctx context.Context, spec provider.NodeSpec, ref types.ManagedObjectReference, cfg *types.VirtualMachineConfigSpec) (*mo.VirtualMachine, error) {
	obj := object.NewVirtualMachine(d.client, ref)
	if err := waitTask(ctx, "apply identity", func() (*object.Task, error) { return obj.Reconfigure(ctx, *cfg) }); err != nil {
		return nil, err
	}
	vm, err := d.find(ctx, spec.ID)
	if err == nil && vm == nil {
		err = stop(fmt.Errorf("VM %s does not keep instance UUID %s: this vCenter ignores requested instance UUIDs", ref.Value, d.instanceUUID(spec.ID)))
	}
	return vm, err
}

func vmName(spec provider.NodeSpec) string {
	if spec.Name == "" || spec.Name == spec.ID {
		return spec.ID
	}
	return spec.Name + "-" + spec.ID
}

// cloneSpec builds the clone request: identity, size, placement, network
// cards and the cloud-init data.
func (d *Driver) cloneSpec(ctx context.Context, spec provider.NodeSpec, tmpl *object.VirtualMachine, t *mo.VirtualMachine) (types.VirtualMachineCloneSpec, bool, error) {
	var cs types.VirtualMachineCloneSpec
	pool, err := d.pool(ctx, t)
	if err != nil {
		return cs, false, err
	}
	cs.Location.Pool = &pool
	if d.cfg.Datastore != "" {
		ds, err := d.finder.Datastore(ctx, d.cfg.Datastore)
		if err != nil {
			return cs, false, fmt.Errorf("datastore %q (Config.Datastore): %w", d.cfg.Datastore, err)
		}
		ref := ds.Reference()
		cs.Location.Datastore = &ref
	}
	linked := !d.cfg.FullClone && t.Snapshot != nil && t.Snapshot.CurrentSnapshot != nil
	if linked {
		cs.Snapshot = t.Snapshot.CurrentSnapshot
		cs.Location.DiskMoveType = string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
	}

	var netBacking types.BaseVirtualDeviceBackingInfo
	if d.cfg.Network != "" {
		nw, err := d.finder.Network(ctx, d.cfg.Network)
		if err != nil {
			return cs, false, fmt.Errorf("network %q (Config.Network): %w", d.cfg.Network, err)
		}
		if netBacking, err = nw.EthernetCardBackingInfo(ctx); err != nil {
			return cs, false, fmt.Errorf("network %q (Config.Network): %w", d.cfg.Network, err)
		}
	}
	// New MAC addresses for every card: vCenter generates them, and the
	// edit makes sure no clone keeps its template's.
	nics := object.VirtualDeviceList(t.Config.Hardware.Device).SelectByType((*types.VirtualEthernetCard)(nil))
	for i, dev := range nics {
		card := dev.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
		card.MacAddress = ""
		card.AddressType = string(types.VirtualEthernetCardMacTypeGenerated)
		if i == 0 && netBacking != nil {
			card.Backing = netBacking
		}
		cs.Location.DeviceChange = append(cs.Location.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationEdit,
			Device:    dev,
		})
	}

	login := d.cfg.User
	if spec.Login.User != "" {
		login = spec.Login.User
	}
	kv := map[string]string{
		keyID:     spec.ID,
		keyName:   spec.Name,
		keyPhase:  "cloned",
		keyImage:  t.Config.InstanceUuid,
		keyImageN: tmpl.InventoryPath,
		keyClone:  map[bool]string{true: "linked", false: "full"}[linked],
		keyLogin:  login,

		"guestinfo.metadata":          base64.StdEncoding.EncodeToString([]byte(d.metadata(spec))),
		"guestinfo.metadata.encoding": "base64",
		"guestinfo.userdata":          base64.StdEncoding.EncodeToString([]byte(d.userdata(spec, login))),
		"guestinfo.userdata.encoding": "base64",
	}
	for k, v := range spec.Labels {
		kv[keyLabel+k] = v
	}
	cfg := &types.VirtualMachineConfigSpec{InstanceUuid: d.instanceUUID(spec.ID)}
	for _, k := range sortedKeys(kv) {
		cfg.ExtraConfig = append(cfg.ExtraConfig, &types.OptionValue{Key: k, Value: kv[k]})
	}
	if spec.Flavor.VCPUs > 0 {
		cfg.NumCPUs = int32(spec.Flavor.VCPUs)
	}
	if spec.Flavor.RAMMiB > 0 {
		cfg.MemoryMB = int64(spec.Flavor.RAMMiB)
	}
	cs.Config = cfg
	return cs, linked, nil
}

// pool chooses the resource pool for new VMs.
func (d *Driver) pool(ctx context.Context, t *mo.VirtualMachine) (types.ManagedObjectReference, error) {
	if d.cfg.ResourcePool != "" {
		p, err := d.finder.ResourcePool(ctx, d.cfg.ResourcePool)
		if err != nil {
			return types.ManagedObjectReference{}, fmt.Errorf("resource pool %q (Config.ResourcePool): %w", d.cfg.ResourcePool, err)
		}
		return p.Reference(), nil
	}
	if t.ResourcePool != nil {
		return *t.ResourcePool, nil
	}
	if t.Runtime.Host == nil {
		return types.ManagedObjectReference{}, stop(errors.New("the template has no host and no resource pool: set Config.ResourcePool"))
	}
	pc := property.DefaultCollector(d.client)
	var h mo.HostSystem
	if err := pc.RetrieveOne(ctx, *t.Runtime.Host, []string{"parent"}, &h); err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("template's host: %w", err)
	}
	var cr mo.ComputeResource
	if err := pc.RetrieveOne(ctx, *h.Parent, []string{"resourcePool"}, &cr); err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("template's cluster: %w", err)
	}
	if cr.ResourcePool == nil {
		return types.ManagedObjectReference{}, stop(errors.New("the template's cluster has no resource pool: set Config.ResourcePool"))
	}
	return *cr.ResourcePool, nil
}

// metadata is cloud-init's VMware guestinfo meta data.
func (d *Driver) metadata(spec provider.NodeSpec) string {
	return "instance-id: " + strconv.Quote(spec.ID) + "\nlocal-hostname: " + strconv.Quote(spec.Name) + "\n"
}

// userdata is the cloud-config that creates the login user with the
// authorized keys, unless Config.UserData replaces it.
func (d *Driver) userdata(spec provider.NodeSpec, login string) string {
	if d.cfg.UserData != "" {
		return d.cfg.UserData
	}
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	fmt.Fprintf(&b, "hostname: %s\nfqdn: %s\n", strconv.Quote(spec.Name), strconv.Quote(spec.Name+"."+d.cfg.Domain))
	b.WriteString("users:\n")
	fmt.Fprintf(&b, "  - name: %s\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    shell: /bin/bash\n", strconv.Quote(login))
	if len(d.cfg.SSHAuthorizedKeys) > 0 {
		b.WriteString("    ssh_authorized_keys:\n")
		for _, k := range d.cfg.SSHAuthorizedKeys {
			fmt.Fprintf(&b, "      - %s\n", strconv.Quote(strings.TrimSpace(k)))
		}
	}
	return b.String()
}

// customize applies guest customization (hostname, fixed address or
// DHCP) to the powered-off clone, then records that it did.
func (d *Driver) customize(ctx context.Context, obj *object.VirtualMachine, vm *mo.VirtualMachine, spec provider.NodeSpec, ipc IPConfig, log *slog.Logger) error {
	if !d.cfg.SkipCustomization && (vm.Config == nil || vm.Config.Tools == nil || vm.Config.Tools.PendingCustomization == "") {
		cust := d.customization(vm, spec, ipc)
		err := waitTask(ctx, "customize", func() (*object.Task, error) { return obj.Customize(ctx, cust) })
		if err != nil && !isFault(err, &types.CustomizationPending{}) {
			if transient(err) {
				return err
			}
			return stop(err)
		}
		log.Info("customized", "vm", vm.Name, "hostname", spec.Name, "ip", addrOrDHCP(ipc))
	}
	if err := d.setPhase(ctx, obj, "customized"); err != nil {
		return err
	}
	setExtra(vm, keyPhase, "customized")
	return nil
}

func addrOrDHCP(ipc IPConfig) string {
	if ipc.Addr.IsValid() {
		return ipc.Addr.String()
	}
	return "dhcp"
}

func (d *Driver) customization(vm *mo.VirtualMachine, spec provider.NodeSpec, ipc IPConfig) types.CustomizationSpec {
	cs := types.CustomizationSpec{
		Identity: &types.CustomizationLinuxPrep{
			HostName:   &types.CustomizationFixedName{Name: spec.Name},
			Domain:     d.cfg.Domain,
			HwClockUTC: types.NewBool(true),
		},
	}
	for _, a := range d.cfg.DNSServers {
		cs.GlobalIPSettings.DnsServerList = append(cs.GlobalIPSettings.DnsServerList, a.String())
	}
	cs.GlobalIPSettings.DnsSuffixList = []string{d.cfg.Domain}
	nics := object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualEthernetCard)(nil))
	for i := range nics {
		ad := types.CustomizationIPSettings{Ip: &types.CustomizationDhcpIpGenerator{}}
		if i == 0 && ipc.Addr.IsValid() {
			ad.Ip = &types.CustomizationFixedIp{IpAddress: ipc.Addr.Addr().String()}
			ad.SubnetMask = net.IP(net.CIDRMask(ipc.Addr.Bits(), 32)).String()
			if ipc.Gateway.IsValid() {
				ad.Gateway = []string{ipc.Gateway.String()}
			}
		}
		cs.NicSettingMap = append(cs.NicSettingMap, types.CustomizationAdapterMapping{Adapter: ad})
	}
	return cs
}

func (d *Driver) setPhase(ctx context.Context, obj *object.VirtualMachine, phase string) error {
	return waitTask(ctx, "record phase "+phase, func() (*object.Task, error) {
		return obj.Reconfigure(ctx, types.VirtualMachineConfigSpec{
			ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: keyPhase, Value: phase}},
		})
	})
}

// waitAddress polls the VM with exponential backoff until VMware Tools
// reports a usable address (the fixed one, when there is one), or
// Config.IPTimeout passes.
func (d *Driver) waitAddress(ctx context.Context, vm *mo.VirtualMachine, ipc IPConfig, log *slog.Logger) (*mo.VirtualMachine, error) {
	wctx, cancel := context.WithTimeout(ctx, d.cfg.IPTimeout)
	defer cancel()
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d.cfg.PollInterval),
		backoff.WithMaxInterval(d.cfg.MaxPollInterval),
		backoff.WithMaxElapsedTime(0), // the context's deadline bounds it
	)
	start := time.Now()
	polls := 0
	var last error
	cur := vm
	err := backoff.Retry(func() error {
		polls++
		got, err := d.props(wctx, vm.Self)
		if err != nil {
			last = err
			if transient(err) {
				return err
			}
			if wctx.Err() != nil {
				return wctx.Err()
			}
			return backoff.Permanent(err)
		}
		cur = got
		if cur.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			last = fmt.Errorf("VM %s is %s", cur.Name, cur.Runtime.PowerState)
			return backoff.Permanent(last)
		}
		priv, pub := addresses(cur)
		if ipc.Addr.IsValid() && !contains(append(priv, pub...), ipc.Addr.Addr()) {
			last = fmt.Errorf("%w yet (waiting for the fixed address %s)", ErrNoAddress, ipc.Addr.Addr())
			return last
		}
		if !provider.PickInterfaceAddr(priv, pub, d.cfg.InterfacePrefixes...).IsValid() {
			last = fmt.Errorf("%w yet", ErrNoAddress)
			return last
		}
		return nil
	}, backoff.WithContext(b, wctx))
	if err == nil {
		log.Info("address reported", "vm", cur.Name, "after", time.Since(start).Round(time.Millisecond), "polls", polls)
		return cur, nil
	}
	switch {
	case errors.Is(last, breaker.ErrOpen):
		return nil, fmt.Errorf("wait for address of VM %s: vCenter calls are suspended: %w", vm.Name, last)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("wait for address of VM %s: %w", vm.Name, ctx.Err())
	case wctx.Err() != nil:
		tools := "unknown"
		if cur.Guest != nil {
			tools = cur.Guest.ToolsRunningStatus
		}
		return nil, fmt.Errorf("VM %s: %w within %s (%d polls, tools %s): check that the template runs open-vm-tools and that its network hands out addresses (or set Config.AssignIP): %v",
			vm.Name, ErrNoAddress, d.cfg.IPTimeout, polls, tools, last)
	}
	return nil, fmt.Errorf("wait for address of VM %s: %w", vm.Name, last)
}

func setExtra(vm *mo.VirtualMachine, key, value string) {
	if vm.Config == nil {
		return
	}
	for _, o := range vm.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov != nil && ov.Key == key {
			ov.Value = value
			return
		}
	}
	vm.Config.ExtraConfig = append(vm.Config.ExtraConfig, &types.OptionValue{Key: key, Value: value})
}
