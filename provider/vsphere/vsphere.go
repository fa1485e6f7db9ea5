package vsphere

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/masonops/mason/breaker"
	"github.com/masonops/mason/provider"
)

// DriverName is the name of this driver in [provider.Node.Provider].
const DriverName = "vsphere"

// ErrLogin is wrapped by the error [Open] returns when vCenter refuses the
// credentials.
var ErrLogin = errors.New("vCenter refused the user name or password")

// ExtraConfig keys the driver keeps on its VMs. They are ordinary VM
// options, not guestinfo.*, so the guest cannot change them.
const (
	keyID     = "mason.id"
	keyName   = "mason.name"
	keyPhase  = "mason.phase" // cloned → customized → ready
	keyImage  = "mason.image.id"
	keyImageN = "mason.image.name"
	keyClone  = "mason.clone" // linked or full
	keyLogin  = "mason.login"
	keyLabel  = "mason.label." // prefix
)

// Driver is the vSphere implementation of [provider.Driver]. Users hold
// the [*provider.Provider] from [Driver.Provider]; provider.Provider.As
// gives back the *Driver.
type Driver struct {
	cfg      Config
	endpoint *url.URL
	log      *slog.Logger
	br       *breaker.Breaker
	client   *vim25.Client
	sm       *session.Manager

	dc     *object.Datacenter
	folder *object.Folder
	finder *find.Finder

	locks sync.Map // node ID → *sync.Mutex: one create/delete per node at a time
}

// Open connects and logs in to vCenter, finds the datacenter and creates
// the deployment folder if needed. Close the driver (or its Provider) to
// log out.
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	u, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	switch {
	case cfg.Username == "" || cfg.Password == "":
		return nil, fmt.Errorf("vsphere: no credentials for %s: set Config.Username and Config.Password, or %s and %s", u, EnvUsername, EnvPassword)
	case cfg.Folder == "":
		return nil, fmt.Errorf("vsphere: no deployment folder: set Config.Folder or %s (for example /DC0/vm/mason/prod); List lists that folder", EnvFolder)
	}
	bo := cfg.Breaker
	if bo.Name == "" {
		bo.Name = "vcenter " + u.Host
	}
	userIsFailure := bo.IsFailure
	bo.IsFailure = func(err error) bool {
		if !isFailure(err) {
			return false
		}
		return userIsFailure == nil || userIsFailure(err)
	}
	d := &Driver{
		cfg:      cfg,
		endpoint: u,
		log:      cfg.Logger.With("driver", DriverName, "vcenter", u.Host),
		br:       breaker.New(bo),
	}

	if cfg.Insecure {
		d.log.Warn("certificate verification is off (Config.Insecure); prefer Config.CAFile or Config.Thumbprint")
	}
	sc := soap.NewClient(u, cfg.Insecure)
	if cfg.Thumbprint != "" {
		sc.SetThumbprint(u.Host, cfg.Thumbprint)
	}
	if cfg.CAFile != "" {
		if err := sc.SetRootCAs(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("vsphere: load CA file %s (Config.CAFile, %s): %w", cfg.CAFile, EnvCAFile, err)
		}
	}
	g := &guard{next: sc, br: d.br}
	var vc *vim25.Client
	err = d.retry(ctx, "connect to vCenter "+u.String(), func(ctx context.Context) error {
		return g.call(ctx, func() error {
			var err error
			vc, err = vim25.NewClient(ctx, sc)
			return err
		})
	})
	if err != nil {
		if soap.IsCertificateUntrusted(err) {
			return nil, fmt.Errorf("vsphere: vCenter %s presented a certificate this machine does not trust: set Config.CAFile (%s) to its CA, Config.Thumbprint (%s) to its SHA-1 thumbprint, or Insecure: %w", u, EnvCAFile, EnvThumbprint, err)
		}
		return nil, fmt.Errorf("vsphere: %w", err)
	}
	vc.RoundTripper = g
	d.client = vc
	d.sm = session.NewManager(vc)
	user := url.UserPassword(cfg.Username, cfg.Password.Reveal())
	err = d.retry(ctx, "log in to vCenter "+u.String(), func(ctx context.Context) error {
		return d.sm.Login(ctx, user)
	})
	if err != nil {
		if isFault(err, &types.InvalidLogin{}) {
			return nil, fmt.Errorf("vsphere: log in to vCenter %s as %q: %w: check Config.Username/Password (%s, %s)", u, cfg.Username, ErrLogin, EnvUsername, EnvPassword)
		}
		return nil, fmt.Errorf("vsphere: %w", err)
	}
	// Every later call passes the breaker, and survives a dropped session.
	// Re-login goes straight to the SOAP client: the breaker already
	// admitted the call that found the session gone.
	raw := *vc
	raw.RoundTripper = sc
	rsm := session.NewManager(&raw)
	vc.RoundTripper = &guard{br: d.br, next: &relogin{
		next:  sc,
		login: func(ctx context.Context) error { return rsm.Login(ctx, user) },
		log:   d.log,
	}}
	d.log.Info("logged in", "user", cfg.Username)

	if err := d.retry(ctx, "find datacenter and folder", d.locate); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("vsphere: %w", err)
	}
	return d, nil
}

// locate finds the datacenter and makes sure the deployment folder exists.
func (d *Driver) locate(ctx context.Context) error {
	d.finder = find.NewFinder(d.client, true)
	var err error
	if d.cfg.Datacenter == "" {
		d.dc, err = d.finder.DefaultDatacenter(ctx)
	} else {
		d.dc, err = d.finder.Datacenter(ctx, d.cfg.Datacenter)
	}
	if err != nil {
		return fmt.Errorf("datacenter %q (set Config.Datacenter or %s): %w", d.cfg.Datacenter, EnvDatacenter, err)
	}
	d.finder.SetDatacenter(d.dc)
	folders, err := d.dc.Folders(ctx)
	if err != nil {
		return fmt.Errorf("folders of datacenter %s: %w", d.dc.InventoryPath, err)
	}
	rel := d.cfg.Folder
	root := folders.VmFolder.InventoryPath
	if strings.HasPrefix(rel, "/") {
		if rel != root && !strings.HasPrefix(rel, root+"/") {
			return fmt.Errorf("folder %s is not under the datacenter's VM folder %s: fix Config.Folder", rel, root)
		}
		rel = strings.TrimPrefix(rel, root)
	}
	f := folders.VmFolder
	for _, name := range strings.Split(strings.Trim(rel, "/"), "/") {
		if name == "" {
			continue
		}
		child, err := d.childNamed(ctx, f, name)
		if err != nil {
			return fmt.Errorf("look up folder %s/%s: %w", f.InventoryPath, name, err)
		}
		if child == nil {
			nf, err := f.CreateFolder(ctx, name)
			switch {
			case err == nil:
				d.log.Info("created folder", "folder", path.Join(f.InventoryPath, name))
				child = nf
			case isFault(err, &types.DuplicateName{}): // another controller was quicker
				if child, err = d.childNamed(ctx, f, name); err != nil || child == nil {
					return fmt.Errorf("folder %s/%s exists but cannot be found: %v", f.InventoryPath, name, err)
				}
			default:
				return fmt.Errorf("create folder %s/%s: %w", f.InventoryPath, name, err)
			}
		}
		cf, ok := child.(*object.Folder)
		if !ok {
			return fmt.Errorf("%s/%s is a %s, not a folder: fix Config.Folder", f.InventoryPath, name, child.Reference().Type)
		}
		cf.InventoryPath = path.Join(f.InventoryPath, name)
		f = cf
	}
	d.folder = f
	return nil
}

// childNamed returns the child of folder f called name, or nil. It reads
// through the property collector rather than SearchIndex.FindChild, which
// vcsim serves without locking the folder.
func (d *Driver) childNamed(ctx context.Context, f *object.Folder, name string) (object.Reference, error) {
	pc := property.DefaultCollector(d.client)
	var fo mo.Folder
	if err := pc.RetrieveOne(ctx, f.Reference(), []string{"childEntity"}, &fo); err != nil {
		return nil, err
	}
	if len(fo.ChildEntity) == 0 {
		return nil, nil
	}
	var ents []mo.ManagedEntity
	if err := pc.Retrieve(ctx, fo.ChildEntity, []string{"name"}, &ents); err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name == name {
			return object.NewReference(d.client, e.Self), nil
		}
	}
	return nil, nil
}

// Provider returns the portable provider backed by this driver.
func (d *Driver) Provider() *provider.Provider { return provider.New(d) }

// Name returns "vsphere".
func (d *Driver) Name() string { return DriverName }

// Client returns the logged-in vSphere API client, for calls this driver
// does not make. Calls through it pass the driver's circuit breaker.
func (d *Driver) Client() *vim25.Client { return d.client }

// Folder returns the inventory path of the deployment folder.
func (d *Driver) Folder() string { return d.folder.InventoryPath }

// Breaker returns the circuit breaker guarding every vCenter call.
func (d *Driver) Breaker() *breaker.Breaker { return d.br }

// Close logs out of vCenter. Nodes are not touched.
func (d *Driver) Close() error {
	if d.sm == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.sm.Logout(ctx); err != nil {
		return fmt.Errorf("vsphere: log out of %s: %w", d.endpoint, err)
	}
	return nil
}

// instanceUUID is the VM instance UUID of node id in this deployment
// folder. It is set at clone time, so a retried create finds the VM it
// made before instead of making another.
func (d *Driver) instanceUUID(id string) string {
	h := sha256.Sum256([]byte("mason/vsphere\x00" + d.folder.InventoryPath + "\x00" + id))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50 // name-based version
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// lock serializes work on one node within this process; across
// controllers vCenter's DuplicateName fault does the same job.
func (d *Driver) lock(id string) func() {
	m, _ := d.locks.LoadOrStore(id, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// vmProps are the properties normalize reads.
var vmProps = []string{
	"name", "config.instanceUuid", "config.extraConfig", "config.hardware",
	"config.tools.pendingCustomization", "runtime.powerState", "guest", "snapshot",
}

// find returns the VM of node id, or nil.
func (d *Driver) find(ctx context.Context, id string) (*mo.VirtualMachine, error) {
	yes := true
	ref, err := object.NewSearchIndex(d.client).FindByUuid(ctx, d.dc, d.instanceUUID(id), true, &yes)
	if err != nil {
		return nil, fmt.Errorf("search VM of node %s: %w", id, err)
	}
	if ref == nil {
		return nil, nil
	}
	vm, err := d.props(ctx, ref.Reference())
	if isFault(err, &types.ManagedObjectNotFound{}) {
		return nil, nil // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	if got := extra(vm)[keyID]; got != id {
		return nil, stop(fmt.Errorf("VM %s has the instance UUID of node %s but belongs to node %q: remove or rename it", vm.Name, id, got))
	}
	return vm, nil
}

func (d *Driver) props(ctx context.Context, ref types.ManagedObjectReference) (*mo.VirtualMachine, error) {
	var vm mo.VirtualMachine
	if err := property.DefaultCollector(d.client).RetrieveOne(ctx, ref, vmProps, &vm); err != nil {
		return nil, fmt.Errorf("read VM %s: %w", ref.Value, err)
	}
	return &vm, nil
}

// Get returns the node, or an error wrapping provider.ErrNotFound.
func (d *Driver) Get(ctx context.Context, id string) (*provider.Node, error) {
	var vm *mo.VirtualMachine
	err := d.retry(ctx, "get node "+id, func(ctx context.Context) error {
		var err error
		vm, err = d.find(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if vm == nil {
		return nil, fmt.Errorf("no VM with the instance UUID of node %s in %s: %w", id, d.folder.InventoryPath, provider.ErrNotFound)
	}
	return d.node(ctx, vm)
}

// List returns the nodes in the deployment folder, sorted by ID. VMs in
// the folder that this driver did not make are ignored.
func (d *Driver) List(ctx context.Context) ([]*provider.Node, error) {
	var vms []mo.VirtualMachine
	err := d.retry(ctx, "list folder "+d.folder.InventoryPath, func(ctx context.Context) error {
		children, err := d.folder.Children(ctx)
		if err != nil {
			return err
		}
		var refs []types.ManagedObjectReference
		for _, c := range children {
			if c.Reference().Type == "VirtualMachine" {
				refs = append(refs, c.Reference())
			}
		}
		vms = nil
		if len(refs) == 0 {
			return nil
		}
		return property.DefaultCollector(d.client).Retrieve(ctx, refs, vmProps, &vms)
	})
	if err != nil {
		return nil, err
	}
	var out []*provider.Node
	for i := range vms {
		if extra(&vms[i])[keyID] == "" {
			continue
		}
		n, err := d.node(ctx, &vms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Delete powers the node's VM off and destroys it with its disks.
// Deleting a missing node succeeds.
func (d *Driver) Delete(ctx context.Context, id string) error {
	defer d.lock(id)()
	return d.retry(ctx, "delete node "+id, func(ctx context.Context) error {
		vm, err := d.find(ctx, id)
		if err != nil || vm == nil {
			return err
		}
		obj := object.NewVirtualMachine(d.client, vm.Self)
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
			if err := waitTask(ctx, "power off", func() (*object.Task, error) { return obj.PowerOff(ctx) }); err != nil &&
				!isFault(err, &types.InvalidPowerState{}) {
				return err
			}
		}
		err = waitTask(ctx, "destroy", func() (*object.Task, error) { return obj.Destroy(ctx) })
		if isFault(err, &types.ManagedObjectNotFound{}) {
			return nil
		}
		if err == nil {
			d.log.Info("deleted node", "node", id, "vm", vm.Name)
		}
		return err
	})
}

// waitTask starts a task and waits for it.
func waitTask(ctx context.Context, what string, start func() (*object.Task, error)) error {
	t, err := start()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := t.Wait(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, describe(err))
	}
	return nil
}

// describe gives task errors, whose text is often empty, a readable text
// while keeping the fault reachable.
func describe(err error) error {
	f := methodFault(err)
	if f == nil || strings.TrimSpace(err.Error()) != "" {
		return err
	}
	return fmt.Errorf("%T fault: %w", f, err)
}

// extra returns the VM's extraConfig as a map.
func extra(vm *mo.VirtualMachine) map[string]string {
	out := map[string]string{}
	if vm.Config == nil {
		return out
	}
	for _, o := range vm.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov != nil {
			if s, ok := ov.Value.(string); ok {
				out[ov.Key] = s
			}
		}
	}
	return out
}
