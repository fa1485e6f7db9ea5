package vsphere

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/masonops/mason/breaker"
	"github.com/masonops/mason/provider"
)

const (
	simUser = "mason-admin"
	simPass = "S3cret-vc-pw!do-not-print"

	linkedTemplate = "/DC0/vm/DC0_C0_RP0_VM0" // made a template with a snapshot
	plainVM        = "/DC0/vm/DC0_H0_VM0"     // an ordinary VM without snapshots
	testKey        = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMasonTestKeyOnlyForTests mason@test"
)

// vcsim is one in-process vCenter simulator (VPX model: one datacenter, a
// cluster and a standalone host) behind a real TLS listener on loopback.
type vcsim struct {
	model  *simulator.Model
	server *simulator.Server
	client *govmomi.Client // admin client for setup and inspection
	thumb  string
	caFile string
}

func newSim(t *testing.T, delays map[string]int) *vcsim {
	t.Helper()
	m := simulator.VPX()
	require.NoError(t, m.Create())
	m.DelayConfig.MethodDelay = delays // before the server starts serving
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword(simUser, simPass)}
	s := m.Service.NewServer()
	t.Cleanup(func() {
		s.Close()
		m.Remove()
	})
	ctx := context.Background()
	u := *s.URL
	u.User = url.UserPassword(simUser, simPass)
	c, err := govmomi.NewClient(ctx, &u, true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	serializeTasks(m, c)
	ca, err := s.CertificateFile() // removed by s.Close
	require.NoError(t, err)
	v := &vcsim{model: m, server: s, client: c, thumb: soap.ThumbprintSHA1(s.Certificate()), caFile: ca}
	v.makeTemplate(t, linkedTemplate)
	return v
}

// serializeTasks makes the simulator run one task at a time, as a vCenter
// that queues them would: a request that starts a task (a *_Task method)
// waits for the tasks started before it to finish. vcsim v0.52–v0.56
// reads a datastore's summary without its lock while another task's
// disk configuration writes it under the lock (Datastore.resolve copies
// mo.Datastore by value; configureDevice updates FreeSpace), which -race
// reports whenever two VMs are cloned or reconfigured at once — as
// concurrent creates do. Other calls (property collector, waits, logins)
// go through at once, so clients still overlap everything else.
func serializeTasks(m *simulator.Model, admin *govmomi.Client) {
	var mu sync.Mutex
	taskRef := regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)
	// More specific than the SDK's own "/sdk" pattern, so it is served
	// first; ServeMux registration is safe while the server runs.
	m.Service.ServeMux.HandleFunc("POST "+m.Service.Context.Map.Path, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte("_Task")) {
			m.Service.ServeSDK(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		rec := httptest.NewRecorder()
		m.Service.ServeSDK(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if sub := taskRef.FindSubmatch(rec.Body.Bytes()); sub != nil {
			ref := types.ManagedObjectReference{Type: "Task", Value: string(sub[1])}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = object.NewTask(admin.Client, ref).Wait(ctx) // its outcome is the caller's to read
		}
	})
}

// makeTemplate powers the VM off, snapshots it and marks it a template.
func (v *vcsim) makeTemplate(t *testing.T, p string) {
	ctx := context.Background()
	vm, err := find.NewFinder(v.client.Client).VirtualMachine(ctx, p)
	require.NoError(t, err)
	task, err := vm.PowerOff(ctx)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))
	task, err = vm.CreateSnapshot(ctx, "base", "mason test base", false, false)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))
	require.NoError(t, vm.MarkAsTemplate(ctx))
}

// logBuf collects the driver's log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ips is a fixed-address plan for the test nodes, keyed by node ID.
type ips map[string]netip.Prefix

func (p ips) assign(_ context.Context, spec provider.NodeSpec) (IPConfig, error) {
	a, ok := p[spec.ID]
	if !ok {
		return IPConfig{}, nil // DHCP
	}
	return IPConfig{Addr: a, Gateway: netip.MustParseAddr("10.77.0.1")}, nil
}

// config is a fast test configuration for the simulator.
func (v *vcsim) config(t *testing.T, plan ips, logs *logBuf) Config {
	if logs == nil {
		logs = new(logBuf)
	}
	return Config{
		URL:               v.server.URL.Host,
		Username:          simUser,
		Password:          simPass,
		CAFile:            v.caFile,
		Template:          linkedTemplate,
		Folder:            "/DC0/vm/mason/" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		AssignIP:          plan.assign,
		DNSServers:        []netip.Addr{netip.MustParseAddr("10.77.0.2")},
		SSHAuthorizedKeys: []string{testKey},
		IPTimeout:         10 * time.Second,
		PollInterval:      5 * time.Millisecond,
		MaxPollInterval:   50 * time.Millisecond,
		RetryFor:          30 * time.Second, // room for slow simulated calls on a loaded machine
		Breaker:           breaker.Options{Failures: 3, OpenFor: 300 * time.Millisecond},
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func open(t *testing.T, cfg Config) *Driver {
	t.Helper()
	d, err := Open(ctxT(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// folderVMs lists the VM names in the driver's folder, as the admin sees them.
func (v *vcsim) folderVMs(t *testing.T, folder string) []string {
	ctx := context.Background()
	f, err := find.NewFinder(v.client.Client).Folder(ctx, folder)
	require.NoError(t, err)
	children, err := f.Children(ctx)
	require.NoError(t, err)
	var names []string
	for _, c := range children {
		if vm, ok := c.(*object.VirtualMachine); ok {
			name, err := vm.ObjectName(ctx)
			require.NoError(t, err)
			names = append(names, name)
		}
	}
	return names
}

// vm reads a VM's raw properties as the admin.
func (v *vcsim) vm(t *testing.T, ref types.ManagedObjectReference) mo.VirtualMachine {
	var vm mo.VirtualMachine
	require.NoError(t, object.NewVirtualMachine(v.client.Client, ref).Properties(context.Background(), ref, []string{"config", "runtime", "guest", "summary"}, &vm))
	return vm
}

// setGuestIP makes the simulated guest report addr, as VMware Tools does
// when a DHCP lease arrives.
func (v *vcsim) setGuestIP(ctx context.Context, ref types.ManagedObjectReference, addr string) error {
	task, err := object.NewVirtualMachine(v.client.Client, ref).Reconfigure(ctx, types.VirtualMachineConfigSpec{
		ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: "SET.guest.ipAddress", Value: addr}},
	})
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

func vmInfo(t *testing.T, n *provider.Node) *VMInfo {
	t.Helper()
	var info *VMInfo
	require.True(t, n.As(&info), "node %s carries *VMInfo", n.ID)
	return info
}

func spec(i int) provider.NodeSpec {
	return provider.NodeSpec{
		ID:     fmt.Sprintf("n%d", i),
		Name:   fmt.Sprintf("node-%d", i),
		Labels: map[string]string{"pool": "web", "index": fmt.Sprint(i)},
		Flavor: provider.Flavor{VCPUs: 2, RAMMiB: 2048},
	}
}

func plan(n int) ips {
	p := ips{}
	for i := range n {
		p[fmt.Sprintf("n%d", i)] = netip.MustParsePrefix(fmt.Sprintf("10.77.0.%d/24", 10+i))
	}
	return p
}

// cloneBare clones the template into folder as name, without any of the
// driver's identity: what a controller leaves when it dies mid-create.
func (v *vcsim) cloneBare(t *testing.T, template, folder, name string) types.ManagedObjectReference {
	ctx := context.Background()
	finder := find.NewFinder(v.client.Client)
	tmpl, err := finder.VirtualMachine(ctx, template)
	require.NoError(t, err)
	f, err := finder.Folder(ctx, folder)
	require.NoError(t, err)
	pool, err := finder.ResourcePool(ctx, "/DC0/host/DC0_C0/Resources")
	require.NoError(t, err)
	ref := pool.Reference()
	task, err := tmpl.Clone(ctx, f, name, types.VirtualMachineCloneSpec{Location: types.VirtualMachineRelocateSpec{Pool: &ref}})
	require.NoError(t, err)
	info, err := task.WaitForResult(ctx, nil)
	require.NoError(t, err)
	return info.Result.(types.ManagedObjectReference)
}
