package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// The mason side of the work, written as a user would write these roles:
// facts come from the provider (gathered once, when the node is
// connected), every file-writing role has a Check that compares what is on
// the node with what it last wrote, in one read-only command marked
// provider.Command.Batch, so the ssh transport runs a node's checks
// together.

// factsRole publishes the node's facts for the config of every peer.
type factsRole struct{}

func (factsRole) Meta() role.Meta { return role.Meta{Name: "fleet-facts", Version: "1"} }

func (factsRole) Run(ctx context.Context, rc *role.Context, _ struct{}) (nodeFacts, error) {
	n := rc.Node()
	return nodeFacts{
		Name:     n.Name,
		Hostname: n.Facts["hostname"],
		CPUs:     n.Flavor.VCPUs,
		MemMiB:   n.Flavor.RAMMiB,
		Kernel:   n.Facts["kernel"],
		Addr:     n.InterfaceAddr.String(),
	}, nil
}

// treeRole ensures the directory tree with its modes.
type treeRole struct{}

type treeOut struct{ Dirs int }

func (treeRole) Meta() role.Meta { return role.Meta{Name: "fleet-tree", Version: "1"} }

func (treeRole) Run(ctx context.Context, rc *role.Context, _ struct{}) (treeOut, error) {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, d := range tree {
		fmt.Fprintf(&b, "mkdir -p %s && chmod %04o %s\n", d.Path, d.Mode, d.Path)
	}
	_, err := rc.Exec(ctx, "sh", "-c", b.String())
	return treeOut{Dirs: len(tree)}, err
}

func (treeRole) Check(ctx context.Context, rc *role.Context, _ struct{}, _ treeOut) (string, error) {
	args := []string{"stat", "-c", "%a %n"}
	var want strings.Builder
	for _, d := range tree {
		args = append(args, d.Path)
		fmt.Fprintf(&want, "%o %s\n", d.Mode, d.Path)
	}
	res, err := rc.Node().Transport.Run(ctx, provider.Command{Args: args, Batch: true})
	if err != nil {
		return "", err
	}
	if got := string(res.Stdout); got != want.String() {
		return "directory tree differs", nil
	}
	return "", nil
}

// blobRole copies the 1 MiB payload.
type blobRole struct{}

type blobIn struct {
	Source string `attr:"fleet.blob"`
}

type blobOut struct{ SHA256 string }

func (blobRole) Meta() role.Meta { return role.Meta{Name: "fleet-blob", Version: "1"} }

func (blobRole) Run(ctx context.Context, rc *role.Context, in blobIn) (blobOut, error) {
	data, err := os.ReadFile(in.Source)
	if err != nil {
		return blobOut{}, err
	}
	if err := rc.Node().Transport.Put(ctx, blobPath, bytes.NewReader(data), provider.FileOptions{Mode: 0o644}); err != nil {
		return blobOut{}, err
	}
	return blobOut{SHA256: sha256hex(data)}, nil
}

func (blobRole) Check(ctx context.Context, rc *role.Context, _ blobIn, last blobOut) (string, error) {
	return checkSum(ctx, rc, blobPath, last.SHA256)
}

// configRole renders the config from the node's facts and every peer's
// address, and runs the reload command only when the file changed.
type configRole struct{}

type configIn struct {
	Self    role.Same[nodeFacts]
	Peers   role.All[nodeFacts]
	Version string `attr:"fleet.version"`
}

type configOut struct {
	SHA256  string
	Changed bool
}

func (configRole) Meta() role.Meta { return role.Meta{Name: "fleet-config", Version: "1"} }

// writeIfChanged replaces the config only when its content differs, and
// then runs the reload command: one round trip.
const writeIfChanged = `set -e
mkdir -p /var/lib/fleet
new=$(mktemp /var/lib/fleet/.fleet.conf.XXXXXX)
trap 'rm -f "$new"' EXIT
cat >"$new"
chmod 0644 "$new"
if [ -f /var/lib/fleet/fleet.conf ] && cmp -s "$new" /var/lib/fleet/fleet.conf; then echo unchanged; exit 0; fi
mv -f "$new" /var/lib/fleet/fleet.conf
` + reloadCmd + `
echo changed
`

func (configRole) Run(ctx context.Context, rc *role.Context, in configIn) (configOut, error) {
	var peers []string
	for _, p := range in.Peers {
		peers = append(peers, p.Value.Addr)
	}
	conf := renderConfig(in.Self.Value, peers, in.Version)
	cmd := provider.Command{Args: []string{"sh", "-c", writeIfChanged}, Stdin: strings.NewReader(conf)}
	res, err := rc.Node().Transport.Run(ctx, cmd)
	if err == nil {
		err = res.Err(cmd)
	}
	if err != nil {
		return configOut{}, err
	}
	return configOut{SHA256: sha256hex([]byte(conf)), Changed: strings.TrimSpace(string(res.Stdout)) == "changed"}, nil
}

func (configRole) Check(ctx context.Context, rc *role.Context, _ configIn, last configOut) (string, error) {
	return checkSum(ctx, rc, configPath, last.SHA256)
}

// checkSum reports drift when path's SHA-256 is not want.
func checkSum(ctx context.Context, rc *role.Context, path, want string) (string, error) {
	res, err := rc.Node().Transport.Run(ctx, provider.Command{Args: []string{"sha256sum", path}, Batch: true})
	if err != nil {
		return "", err
	}
	got, _, _ := strings.Cut(string(res.Stdout), " ")
	if got != want {
		return path + " changed", nil
	}
	return "", nil
}
