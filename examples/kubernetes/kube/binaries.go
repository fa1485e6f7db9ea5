package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
)

// ControlPlaneBinaries installs kube-apiserver, kube-controller-manager,
// kube-scheduler and kubectl on a control-plane node.
type ControlPlaneBinaries struct{}

// WorkerBinaries installs kubelet and kube-proxy on a
// worker.
type WorkerBinaries struct{}

// BinariesIn is the controller's copy and where to install it.
type BinariesIn struct {
	Artifacts role.One[Artifacts]
	BinDir    string `attr:"kubernetes.bin_dir"`
}

// ControlPlaneBinariesOut lists what was installed.
type ControlPlaneBinariesOut struct{ Installed }

// WorkerBinariesOut lists what was installed.
type WorkerBinariesOut struct{ Installed }

// Installed maps each binary's path on the node to its SHA-256, and
// records each file's size, modification time and inode as installed, so
// a drift check reads a binary again only when its stamp changed.
type Installed struct {
	Version string
	Dir     string
	SHA256  map[string]string
	Stamps  map[string]Stamp
}

// Stamp is what stat says of a file: when it still says the same, the
// file is taken to be the one whose digest was recorded with it.
type Stamp struct {
	Size    int64
	ModTime string // seconds.nanoseconds, as stat prints it
	Inode   uint64
}

// Bin returns the path of binary name on the node.
func (i Installed) Bin(name string) string { return path.Join(i.Dir, name) }

var (
	controlPlaneBins = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}
	workerBins       = []string{"kubelet", "kube-proxy"}
)

// Meta implements role.Role.
func (ControlPlaneBinaries) Meta() role.Meta {
	return role.Meta{Name: "kube-binaries-control-plane", Version: "2", Doc: "installs the control plane's binaries"}
}

// Run implements role.Role.
func (ControlPlaneBinaries) Run(ctx context.Context, rc *role.Context, in BinariesIn) (ControlPlaneBinariesOut, error) {
	i, err := installBinaries(ctx, rc.Node(), in, controlPlaneBins)
	return ControlPlaneBinariesOut{i}, err
}

// Check reports drift when a binary is missing or changed.
func (ControlPlaneBinaries) Check(ctx context.Context, rc *role.Context, _ BinariesIn, last ControlPlaneBinariesOut) (string, error) {
	return binariesDrift(ctx, rc.Node(), last.Installed), nil
}

// Meta implements role.Role.
func (WorkerBinaries) Meta() role.Meta {
	return role.Meta{Name: "kube-binaries-worker", Version: "2", Doc: "installs kubelet and kube-proxy"}
}

// Run implements role.Role.
func (WorkerBinaries) Run(ctx context.Context, rc *role.Context, in BinariesIn) (WorkerBinariesOut, error) {
	i, err := installBinaries(ctx, rc.Node(), in, workerBins)
	return WorkerBinariesOut{i}, err
}

// Check reports drift when a binary is missing or changed.
func (WorkerBinaries) Check(ctx context.Context, rc *role.Context, _ BinariesIn, last WorkerBinariesOut) (string, error) {
	return binariesDrift(ctx, rc.Node(), last.Installed), nil
}

// installBinaries puts each binary on the node: through the node's
// lab.HostFiles capability where it has one (a link or an in-kernel copy
// of the controller's file, checked against its digest), else streamed
// through the transport when the node's copy differs from the
// controller's. It records each installed file's stamp.
func installBinaries(ctx context.Context, n *provider.Node, in BinariesIn, names []string) (Installed, error) {
	a := in.Artifacts.Value
	out := Installed{Version: a.Version, Dir: in.BinDir, SHA256: map[string]string{}}
	for _, name := range names {
		out.SHA256[name] = a.SHA256[name]
	}
	fast, err := provider.CapabilityOf[lab.HostFiles](n)
	if err == nil {
		for _, name := range names {
			src := lab.HostFile{Path: a.Path(name), SHA256: a.SHA256[name], Size: a.Stamps[name].Size, ModTime: a.Stamps[name].ModTime}
			_, err = fast.InstallHostFile(ctx, path.Join(in.BinDir, name), src, provider.FileOptions{Mode: 0o755})
			if err != nil {
				break
			}
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, provider.ErrNoCapability):
		if err := streamBinaries(ctx, n, a, in.BinDir, names); err != nil {
			return Installed{}, err
		}
	default:
		return Installed{}, fmt.Errorf("installing the binaries on %s: %w", n.Name, err)
	}
	if out.Stamps, err = remoteStamps(ctx, n, in.BinDir, names); err != nil {
		return Installed{}, err
	}
	return out, nil
}

// streamBinaries copies each binary whose checksum on the node differs
// from the controller's copy through the node's transport, and checks the
// result. Only files of the right size are read to compare.
func streamBinaries(ctx context.Context, n *provider.Node, a Artifacts, dir string, names []string) error {
	stamps, _ := remoteStamps(ctx, n, dir, names)
	var same []string
	for _, name := range names {
		if st, ok := stamps[name]; ok && st.Size == a.Stamps[name].Size {
			same = append(same, name)
		}
	}
	have := remoteSums(ctx, n, dir, same)
	for _, name := range names {
		if have[name] == a.SHA256[name] {
			continue
		}
		f, err := os.Open(a.Path(name))
		if err != nil {
			return err
		}
		err = n.Transport.Put(ctx, path.Join(dir, name), f, provider.FileOptions{Mode: 0o755})
		f.Close()
		if err != nil {
			return fmt.Errorf("installing %s on %s: %w", name, n.Name, err)
		}
	}
	want := map[string]string{}
	for _, name := range names {
		want[name] = a.SHA256[name]
	}
	if got := remoteSums(ctx, n, dir, names); !sameSums(got, want) {
		return fmt.Errorf("binaries on %s do not match the controller's after copying: %v", n.Name, got)
	}
	return nil
}

// remoteStamps stats the named files in dir on the node with one command;
// missing files are left out.
func remoteStamps(ctx context.Context, n *provider.Node, dir string, names []string) (map[string]Stamp, error) {
	args := []string{"stat", "-c", "%s %.9Y %i %n"}
	for _, name := range names {
		args = append(args, path.Join(dir, name))
	}
	res, err := n.Transport.Run(ctx, provider.Command{Args: args})
	if err != nil {
		return nil, err
	}
	out := map[string]Stamp{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		size, err1 := strconv.ParseInt(f[0], 10, 64)
		ino, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 == nil && err2 == nil {
			out[path.Base(f[3])] = Stamp{Size: size, ModTime: f[1], Inode: ino}
		}
	}
	return out, nil
}

func remoteSums(ctx context.Context, n *provider.Node, dir string, names []string) map[string]string {
	sums := map[string]string{}
	if len(names) == 0 {
		return sums
	}
	args := []string{"sha256sum"}
	for _, name := range names {
		args = append(args, path.Join(dir, name))
	}
	res, _ := n.Transport.Run(ctx, provider.Command{Args: args})
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			sums[path.Base(f[1])] = f[0]
		}
	}
	return sums
}

func sameSums(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// binariesDrift reports a binary that is missing or changed. A binary
// whose stamp (size, modification time, inode) is the one recorded at
// install is not read; one whose stamp changed is hashed.
func binariesDrift(ctx context.Context, n *provider.Node, last Installed) string {
	names := slices.Sorted(maps.Keys(last.SHA256))
	stamps, err := remoteStamps(ctx, n, last.Dir, names)
	if err != nil {
		return "cannot stat the binaries on " + n.Name + ": " + err.Error()
	}
	var changed []string
	for _, name := range names {
		st, ok := stamps[name]
		if !ok {
			return path.Join(last.Dir, name) + " is missing"
		}
		if st != last.Stamps[name] {
			changed = append(changed, name)
		}
	}
	got := remoteSums(ctx, n, last.Dir, changed)
	for _, name := range changed {
		if got[name] != last.SHA256[name] {
			return path.Join(last.Dir, name) + " was changed"
		}
	}
	return ""
}
