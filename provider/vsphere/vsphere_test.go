package vsphere

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

// Five nodes created at once all come up with their fixed addresses and
// fully normalized fields; deleting them removes their VMs.
func TestCreateFiveConcurrently(t *testing.T) {
	v := newSim(t, map[string]int{"CloneVM_Task": 20}) // cloning takes a while
	logs := new(logBuf)
	cfg := v.config(t, plan(5), logs)
	d := open(t, cfg)
	p := d.Provider()
	ctx := ctxT(t)

	nodes := make([]*provider.Node, 5)
	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = p.Create(ctx, spec(i))
		}()
	}
	wg.Wait()

	macs := map[string]bool{}
	for i, n := range nodes {
		require.NoError(t, errs[i], "node %d", i)
		s := spec(i)
		want := plan(5)[s.ID].Addr()
		require.Equal(t, s.ID, n.ID)
		require.Equal(t, s.Name, n.Name)
		require.Equal(t, DriverName, n.Provider)
		require.Equal(t, "/DC0", n.Location)
		require.Equal(t, provider.StateRunning, n.State)
		require.Equal(t, want, n.InterfaceAddr, "the fixed address from guest customization")
		require.Contains(t, n.PrivateAddrs, want)
		require.Len(t, n.MACs, 1)
		require.Contains(t, []string{"00:50:56", "00:0c:29"}, n.MACs[0].String()[:8], "a VMware MAC")
		macs[n.MACs[0].String()] = true
		require.Equal(t, provider.Flavor{VCPUs: 2, RAMMiB: 2048, DiskGiB: n.Flavor.DiskGiB}, n.Flavor)
		require.Equal(t, linkedTemplate, n.Image.Name)
		require.NotEmpty(t, n.Image.ID, "the template's instance UUID")
		require.Equal(t, "mason", n.Login.User)
		require.Equal(t, map[string]string{"pool": "web", "index": fmt.Sprint(i)}, n.Labels)
		require.Equal(t, s.Name, n.Facts["guest.hostname"], "hostname from guest customization")
		require.Equal(t, "linked", n.Facts["vsphere.clone"], "the template has a snapshot")
		require.Nil(t, n.Transport, "no Config.Transport, no transport")

		info := vmInfo(t, n)
		require.Equal(t, d.instanceUUID(s.ID), info.InstanceUUID)
		require.True(t, info.LinkedClone)
		require.Equal(t, s.Name+"-"+s.ID, info.VMName)

		// What vCenter holds: the identity, and cloud-init data with the key.
		raw := v.vm(t, info.Ref)
		require.Equal(t, d.instanceUUID(s.ID), raw.Config.InstanceUuid)
		kv := extra(&raw)
		ud, err := base64.StdEncoding.DecodeString(kv["guestinfo.userdata"])
		require.NoError(t, err)
		require.Contains(t, string(ud), "#cloud-config\n")
		require.Contains(t, string(ud), testKey)
		md, err := base64.StdEncoding.DecodeString(kv["guestinfo.metadata"])
		require.NoError(t, err)
		require.Contains(t, string(md), fmt.Sprintf("instance-id: %q", s.ID))
		require.Equal(t, "base64", kv["guestinfo.userdata.encoding"])
	}
	require.Len(t, macs, 5, "every clone has its own MAC address")

	list, err := p.List(ctx)
	require.NoError(t, err)
	var ids []string
	for _, n := range list {
		ids = append(ids, n.ID)
		require.Equal(t, nodes[n.ID[1]-'0'].InterfaceAddr, n.InterfaceAddr)
	}
	require.Equal(t, []string{"n0", "n1", "n2", "n3", "n4"}, ids)

	got, err := p.Get(ctx, "n3")
	require.NoError(t, err)
	require.Equal(t, netip.MustParseAddr("10.77.0.13"), got.InterfaceAddr)

	// One at a time: vcsim v0.52.0 has a data race between concurrent
	// DestroyVM_Task runs (datastore file bookkeeping) that -race reports.
	for i := range 5 {
		require.NoError(t, p.Delete(ctx, spec(i).ID))
		_, err := p.Get(ctx, spec(i).ID)
		require.ErrorIs(t, err, provider.ErrNotFound)
	}
	list, err = p.List(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	require.Empty(t, v.folderVMs(t, d.Folder()), "the VMs are destroyed, not just forgotten")
	require.NoError(t, p.Delete(ctx, "n0"), "deleting a missing node succeeds")
	require.NotContains(t, logs.String(), simPass)
}

// A second Create of the same spec, from the same or another controller,
// finds the VM instead of cloning another one.
func TestCreateIsIdempotent(t *testing.T) {
	v := newSim(t, nil)
	cfg := v.config(t, plan(2), nil)
	a := open(t, cfg).Provider()
	b := open(t, cfg).Provider() // a second controller with the same config
	ctx := ctxT(t)

	n1, err := a.Create(ctx, spec(0))
	require.NoError(t, err)
	n2, err := a.Create(ctx, spec(0))
	require.NoError(t, err)
	n3, err := b.Create(ctx, spec(0))
	require.NoError(t, err)
	require.Equal(t, vmInfo(t, n1).Ref, vmInfo(t, n2).Ref)
	require.Equal(t, vmInfo(t, n1).Ref, vmInfo(t, n3).Ref)
	require.Equal(t, n1.InterfaceAddr, n3.InterfaceAddr)

	// A controller that died between clone and identity left a bare clone
	// with the node's name: the next Create adopts it instead of cloning.
	ref := v.cloneBare(t, linkedTemplate, "/DC0/vm/mason/testcreateisidempotent", "node-1-n1")
	n4, err := b.Create(ctx, spec(1))
	require.NoError(t, err)
	require.Equal(t, ref, vmInfo(t, n4).Ref, "the bare clone was adopted")
	require.Equal(t, plan(2)["n1"].Addr(), n4.InterfaceAddr)

	names := v.folderVMs(t, "/DC0/vm/mason/testcreateisidempotent")
	sort.Strings(names)
	require.Equal(t, []string{"node-0-n0", "node-1-n1"}, names, "one VM per node, however often it was created")

	// A VM with the same name that belongs to another node is not taken.
	_, err = a.Create(ctx, provider.NodeSpec{ID: "node-0-n0"})
	require.ErrorContains(t, err, "belongs to node n0")
	require.Len(t, v.folderVMs(t, "/DC0/vm/mason/testcreateisidempotent"), 2)
}

// Templates without a snapshot are cloned in full; nodes without a fixed
// address wait for the guest to report its DHCP address.
func TestFullCloneAndDHCP(t *testing.T) {
	v := newSim(t, nil)
	cfg := v.config(t, nil, nil)
	cfg.Template = plainVM
	d := open(t, cfg)
	ctx := ctxT(t)

	s := spec(0)
	s.Flavor = provider.Flavor{}
	// The simulated guest gets its lease once the VM is on.
	leased := make(chan error, 1)
	go func() {
		leased <- func() error {
			for {
				vm, err := d.find(ctx, s.ID)
				if err != nil {
					return err
				}
				if vm != nil && vm.Runtime.PowerState == "poweredOn" {
					return v.setGuestIP(ctx, vm.Self, "192.168.77.5")
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}()
	n, err := d.Provider().Create(ctx, s)
	require.NoError(t, err)
	require.NoError(t, <-leased)
	require.Equal(t, netip.MustParseAddr("192.168.77.5"), n.InterfaceAddr)
	require.Equal(t, "full", n.Facts["vsphere.clone"])
	require.False(t, vmInfo(t, n).LinkedClone)
	require.Equal(t, plainVM, n.Image.Name)
	require.Positive(t, n.Flavor.VCPUs, "the template's size")
	require.Positive(t, n.Flavor.RAMMiB)

	// VMs in the folder that the driver did not make are not nodes.
	v.cloneBare(t, plainVM, d.Folder(), "stranger")
	list, err := d.Provider().List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, s.ID, list[0].ID)
	require.Len(t, v.folderVMs(t, d.Folder()), 2)
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(EnvURL, "vc.example.com")
	t.Setenv(EnvUsername, "ops@vsphere.local")
	t.Setenv(EnvPassword, "env-secret-pw")
	t.Setenv(EnvFolder, "/DC1/vm/mason/prod")
	t.Setenv(EnvTemplate, "ubuntu-24.04")
	t.Setenv(EnvInsecure, "false")
	c, err := ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, "ops@vsphere.local", c.Username)
	require.Equal(t, "env-secret-pw", c.Password.Reveal())
	require.Equal(t, "/DC1/vm/mason/prod", c.Folder)
	require.Equal(t, "ubuntu-24.04", c.Template)
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", c, c, c), "env-secret-pw")
	u, err := c.endpoint()
	require.NoError(t, err)
	require.Equal(t, "https://vc.example.com/sdk", u.String())

	t.Setenv(EnvInsecure, "maybe")
	_, err = ConfigFromEnv()
	require.ErrorContains(t, err, EnvInsecure)
}

// Config.Transport gets the normalized node (address and login) once it
// is running; its errors reach the caller.
func TestTransportHook(t *testing.T) {
	v := newSim(t, nil)
	cfg := v.config(t, plan(1), nil)
	var seen []string
	var mu sync.Mutex
	cfg.Transport = func(ctx context.Context, n *provider.Node) (provider.Transport, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, n.Login.User+"@"+n.InterfaceAddr.String())
		return nil, errors.New("no route to guest (test)")
	}
	d := open(t, cfg)
	s := spec(0)
	s.Login = provider.Login{User: "ubuntu"}
	_, err := d.Provider().Create(ctxT(t), s)
	require.ErrorContains(t, err, "transport to node n0 at 10.77.0.10: no route to guest (test)")
	require.Equal(t, []string{"ubuntu@10.77.0.10"}, seen)
}
