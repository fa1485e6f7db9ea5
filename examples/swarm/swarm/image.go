package swarm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Image builds the demo image on the controller and loads it into the
// node's engine: no registry is reachable, so every engine gets the image
// before it joins the swarm, and the service's tasks start at once.
//
// The image is one layer made from Debian's busybox-static: its shell and
// its httpd, which serves a page with the name of the node it runs on. It
// is reproducible — the same busybox gives the same image ID — so a
// re-run loads nothing, and a changed busybox is drift.
type Image struct{}

// ImageIn is the engine to load into and what to build from.
type ImageIn struct {
	Engine  role.Same[EngineOut]
	Busybox string `attr:"swarm.busybox"`
	Port    int    `attr:"swarm.service_port"`
	Issuer  role.Uses[pki.Issuer]
}

// ImageOut is the loaded image. Its tag is made from its ID
// (mason-demo:<short ID>), so a changed image is a changed service spec,
// which swarm rolls out.
type ImageOut struct {
	Tag string
	ID  string
}

// ImageRepo is the demo image's repository name in every engine.
const ImageRepo = "mason-demo"

// Meta implements role.Role.
func (Image) Meta() role.Meta {
	return role.Meta{Name: "demo-image", Version: "1", Doc: "builds the demo image from busybox-static and loads it into the engine"}
}

// DemoImage builds the demo image from the static busybox at path; it
// answers on port.
func DemoImage(path string, port int) (*dockerapi.Built, error) {
	bb, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("demo image: %w (install Debian's busybox-static)", err)
	}
	files := []dockerapi.File{
		{Path: "bin", Dir: true},
		{Path: "bin/busybox", Mode: 0o755, Data: bb},
		{Path: "www", Dir: true},
		{Path: "tmp", Dir: true, Mode: 0o1777},
	}
	for _, applet := range []string{"sh", "httpd", "echo", "cat", "ls", "hostname", "sleep", "wget"} {
		files = append(files, dockerapi.File{Path: "bin/" + applet, Link: "busybox"})
	}
	// NODE is set per task from the swarm template {{.Node.Hostname}}. The
	// shell stays PID 1 to stop httpd on SIGTERM at once (PID 1 ignores
	// signals it has no handler for, which would cost the stop grace period
	// on every drain).
	cmd := fmt.Sprintf(`echo "${NODE:-$(hostname)}" >/www/index.html || exit 1; httpd -f -p %d -h /www & trap 'kill $!; exit 0' TERM; wait`, port)
	return dockerapi.Build(dockerapi.ImageConfig{
		Cmd:          []string{"/bin/sh", "-c", cmd},
		Env:          []string{"PATH=/bin"},
		ExposedPorts: []string{strconv.Itoa(port) + "/tcp"},
		Labels:       map[string]string{"org.opencontainers.image.title": "mason demo: answers with its node's name"},
	}, files)
}

// Run implements role.Role.
func (Image) Run(ctx context.Context, rc *role.Context, in ImageIn) (ImageOut, error) {
	img, err := DemoImage(in.Busybox, in.Port)
	if err != nil {
		return ImageOut{}, err
	}
	out := ImageOut{Tag: ImageRepo + ":" + img.ShortID(), ID: img.ID}
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return ImageOut{}, err
	}
	c := e.at(in.Engine.Value.IP)
	defer c.Close()
	if have, err := c.Image(ctx, out.Tag); err == nil && have.ID == out.ID {
		return out, nil
	} else if err != nil && !dockerapi.IsNotFound(err) {
		return ImageOut{}, err
	}
	archive, err := img.Archive(out.Tag)
	if err != nil {
		return ImageOut{}, err
	}
	if err := c.ImageLoad(ctx, bytes.NewReader(archive)); err != nil {
		return ImageOut{}, fmt.Errorf("loading %s into the engine on %s: %w", out.Tag, rc.Node().Name, err)
	}
	have, err := c.Image(ctx, out.Tag)
	if err != nil {
		return ImageOut{}, err
	}
	if have.ID != out.ID {
		return ImageOut{}, fmt.Errorf("engine on %s loaded %s as %s, expected %s", rc.Node().Name, out.Tag, have.ID, out.ID)
	}
	rc.Log().Info("loaded the demo image", "image", out.Tag, "bytes", len(archive))
	return out, nil
}

// Check reports drift when the engine lost the image or busybox changed.
func (Image) Check(ctx context.Context, rc *role.Context, in ImageIn, last ImageOut) (string, error) {
	img, err := DemoImage(in.Busybox, in.Port)
	if err != nil {
		return "", err
	}
	if img.ID != last.ID {
		return "the demo image built from " + in.Busybox + " changed", nil
	}
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return "", err
	}
	c := e.at(in.Engine.Value.IP)
	defer c.Close()
	have, err := c.Image(ctx, last.Tag)
	switch {
	case dockerapi.IsNotFound(err) || (err == nil && have.ID != last.ID):
		return last.Tag + " is missing from the engine on " + rc.Node().Name, nil
	case err != nil:
		// An engine that does not answer is the engine role's drift;
		// once it runs again this role learns whether it must re-run.
		return "", nil
	}
	return "", nil
}
