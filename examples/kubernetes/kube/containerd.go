package kube

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// Containerd runs Debian's containerd (with Debian's runc) as the
// kubelet's container runtime and imports the locally built pause and
// busybox images into its k8s.io namespace.
type Containerd struct{}

// ContainerdIn needs the controller's binaries (the pause binary becomes
// the sandbox image).
type ContainerdIn struct {
	Artifacts role.One[Artifacts]
	// Busybox is the static busybox the test image is made from.
	Busybox string `attr:"kubernetes.busybox" default:"/bin/busybox"`
}

// ContainerdOut names the socket and the imported images.
type ContainerdOut struct {
	Socket string
	Images []string
}

// ContainerdConfig is containerd's configuration file.
const ContainerdConfig = ContainerdDir + "/config.toml"

// Meta implements role.Role.
func (Containerd) Meta() role.Meta {
	return role.Meta{Name: "kube-containerd", Version: "1", Doc: "runs containerd and imports the pause and busybox images"}
}

// containerdConfig is the CRI plugin's configuration. Two settings are
// needed where the node lacks CAP_SYS_RESOURCE (lab nodes, some
// containers): restrict_oom_score_adj, without which runc fails with
// "can't get final child's PID from pipe", and netns_mounts_under_state_dir.
const containerdConfig = `# written by mason (examples/kubernetes)
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + PauseImage + `"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "` + CNIBinDir + `"
    conf_dir = "` + CNIConfDir + `"
`

var containerdService = service{Name: "containerd", Description: "containerd container runtime",
	Args: []string{"/usr/bin/containerd", "--config", ContainerdConfig}}

// Run implements role.Role.
func (Containerd) Run(ctx context.Context, rc *role.Context, in ContainerdIn) (ContainerdOut, error) {
	n := rc.Node()
	if err := rc.WriteFile(ctx, ContainerdConfig, []byte(containerdConfig), 0o644); err != nil {
		return ContainerdOut{}, err
	}
	if err := containerdService.ensure(ctx, rc, digest(containerdConfig)); err != nil {
		return ContainerdOut{}, err
	}
	sock := "/run/containerd/containerd.sock"
	if err := containerdService.waitFor(ctx, n, 30*time.Second, func() error {
		_, err := rc.Exec(ctx, "ctr", "--address", sock, "version")
		return err
	}); err != nil {
		return ContainerdOut{}, err
	}
	pause, err := PauseImageTar(in.Artifacts.Value.Path("pause"))
	if err != nil {
		return ContainerdOut{}, err
	}
	busybox, err := BusyboxImageTar(in.Busybox)
	if err != nil {
		return ContainerdOut{}, err
	}
	out := ContainerdOut{Socket: sock}
	for _, img := range []struct {
		ref  string
		data []byte
	}{{PauseImage, pause}, {BusyboxImage, busybox}} {
		if err := importImage(ctx, n, sock, img.ref, img.data); err != nil {
			return ContainerdOut{}, err
		}
		out.Images = append(out.Images, img.ref)
	}
	return out, nil
}

// Check reports drift when containerd is not running or an image is gone.
func (Containerd) Check(ctx context.Context, rc *role.Context, _ ContainerdIn, last ContainerdOut) (string, error) {
	if d := driftIfStopped(ctx, rc, containerdService); d != "" {
		return d, nil
	}
	have, err := rc.Exec(ctx, "ctr", "--address", last.Socket, "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return "containerd does not answer: " + err.Error(), nil
	}
	for _, ref := range last.Images {
		if !strings.Contains(string(have), ref) {
			return "image " + ref + " is gone", nil
		}
	}
	return "", nil
}

func importImage(ctx context.Context, n *provider.Node, sock, ref string, data []byte) error {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(ref)
	path := "/var/lib/mason/images/" + name + ".tar"
	if err := n.Transport.Put(ctx, path, bytes.NewReader(data), provider.FileOptions{Mode: 0o644}); err != nil {
		return err
	}
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"ctr", "--address", sock, "-n", "k8s.io", "images", "import", path}})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("importing %s on %s: %s", ref, n.Name, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}
