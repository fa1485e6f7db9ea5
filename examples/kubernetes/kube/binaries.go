package kube

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/masonops/mason/provider"
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

// Installed maps each binary's path on the node to its SHA-256.
type Installed struct {
	Version string
	Dir     string
	SHA256  map[string]string
}

// Bin returns the path of binary name on the node.
func (i Installed) Bin(name string) string { return path.Join(i.Dir, name) }

var (
	controlPlaneBins = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}
	workerBins       = []string{"kubelet", "kube-proxy"}
)

// Meta implements role.Role.
func (ControlPlaneBinaries) Meta() role.Meta {
	return role.Meta{Name: "kube-binaries-control-plane", Version: "1", Doc: "installs the control plane's binaries"}
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
	return role.Meta{Name: "kube-binaries-worker", Version: "1", Doc: "installs kubelet and kube-proxy"}
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

// installBinaries copies each binary whose checksum on the node differs
// from the controller's copy, through the node's transport.
func installBinaries(ctx context.Context, n *provider.Node, in BinariesIn, names []string) (Installed, error) {
	a := in.Artifacts.Value
	out := Installed{Version: a.Version, Dir: in.BinDir, SHA256: map[string]string{}}
	have := remoteSums(ctx, n, in.BinDir, names)
	for _, name := range names {
		want := a.SHA256[name]
		out.SHA256[name] = want
		if have[name] == want {
			continue
		}
		f, err := os.Open(a.Path(name))
		if err != nil {
			return Installed{}, err
		}
		err = n.Transport.Put(ctx, path.Join(in.BinDir, name), f, provider.FileOptions{Mode: 0o755})
		f.Close()
		if err != nil {
			return Installed{}, fmt.Errorf("installing %s on %s: %w", name, n.Name, err)
		}
	}
	if got := remoteSums(ctx, n, in.BinDir, names); !sameSums(got, out.SHA256) {
		return Installed{}, fmt.Errorf("binaries on %s do not match the controller's after copying: %v", n.Name, got)
	}
	return out, nil
}

func remoteSums(ctx context.Context, n *provider.Node, dir string, names []string) map[string]string {
	args := []string{"sha256sum"}
	for _, name := range names {
		args = append(args, path.Join(dir, name))
	}
	res, _ := n.Transport.Run(ctx, provider.Command{Args: args})
	sums := map[string]string{}
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

func binariesDrift(ctx context.Context, n *provider.Node, last Installed) string {
	var names []string
	for name := range last.SHA256 {
		names = append(names, name)
	}
	got := remoteSums(ctx, n, last.Dir, names)
	for _, name := range names {
		if got[name] != last.SHA256[name] {
			return path.Join(last.Dir, name) + " is missing or changed"
		}
	}
	return ""
}
