package vsphere_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"net/url"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/vsphere"
)

// Create a node from a template with a fixed address, then delete it. The
// vCenter here is govmomi's simulator; against a real one, fill Config from
// the environment with vsphere.ConfigFromEnv.
func Example() {
	ctx := context.Background()
	vc, caFile, stop := startSimulator(ctx)
	defer stop()

	d, err := vsphere.Open(ctx, vsphere.Config{
		URL:      vc,
		Username: "admin",
		Password: "example-password",
		CAFile:   caFile,
		Template: "/DC0/vm/DC0_C0_RP0_VM0",
		Folder:   "/DC0/vm/mason/example",
		AssignIP: func(ctx context.Context, spec provider.NodeSpec) (vsphere.IPConfig, error) {
			return vsphere.IPConfig{Addr: netip.MustParsePrefix("10.20.0.11/24"), Gateway: netip.MustParseAddr("10.20.0.1")}, nil
		},
		SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey user@example"},
		PollInterval:      10 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := d.Provider()
	defer p.Close()

	n, err := p.Create(ctx, provider.NodeSpec{ID: provider.StableID("web", "0"), Name: "web-0",
		Flavor: provider.Flavor{VCPUs: 2, RAMMiB: 4096}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n.Name, n.State, n.InterfaceAddr, n.Flavor.VCPUs, n.Flavor.RAMMiB, n.Login.User, n.Facts["vsphere.clone"])

	var info *vsphere.VMInfo
	if n.As(&info) {
		fmt.Println(info.Folder, info.PowerState)
	}
	if err := p.Delete(ctx, n.ID); err != nil {
		fmt.Println(err)
	}
	list, _ := p.List(ctx)
	fmt.Println(len(list), "nodes left")
	// Output:
	// web-0 running 10.20.0.11 2 4096 mason linked
	// /DC0/vm/mason/example poweredOn
	// 0 nodes left
}

// startSimulator runs an in-process vCenter with a template that has a
// snapshot, and returns its address and CA file.
func startSimulator(ctx context.Context) (addr, caFile string, stop func()) {
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		panic(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword("admin", "example-password")}
	s := m.Service.NewServer()
	stop = func() { s.Close(); m.Remove() }

	u := *s.URL
	u.User = url.UserPassword("admin", "example-password")
	c, err := govmomi.NewClient(ctx, &u, true)
	if err != nil {
		panic(err)
	}
	defer c.Logout(ctx)
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, "/DC0/vm/DC0_C0_RP0_VM0")
	if err != nil {
		panic(err)
	}
	if t, err := vm.PowerOff(ctx); err == nil {
		_ = t.Wait(ctx)
	}
	if t, err := vm.CreateSnapshot(ctx, "base", "", false, false); err == nil {
		_ = t.Wait(ctx)
	}
	if err := vm.MarkAsTemplate(ctx); err != nil {
		panic(err)
	}
	caFile, err = s.CertificateFile()
	if err != nil {
		panic(err)
	}
	return s.URL.Host, caFile, stop
}
