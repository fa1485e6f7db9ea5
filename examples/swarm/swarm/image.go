package swarm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/masonops/mason/examples/swarm/dockerapi"
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
}

// ImageOut is the loaded image.
type ImageOut struct {
	Tag string
	ID  string
}

// ImageTag names the demo image in every engine.
const ImageTag = "mason-demo:1"

// Meta implements role.Role.
func (Image) Meta() role.Meta {
	return role.Meta{Name: "demo-image", Version: "1", Doc: "builds the demo image from busybox-static and loads it into the engine"}
}

// DemoImage returns the demo image archive (`docker save` format) and its
// ID, built from the static busybox at path.
func DemoImage(path string, port int) ([]byte, string, error) {
	bb, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("demo image: %w (install Debian's busybox-static)", err)
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
	// NODE is set per task from the swarm template {{.Node.Hostname}}.
	cmd := fmt.Sprintf(`echo "${NODE:-$(hostname)}" >/www/index.html && exec httpd -f -p %d -h /www`, port)
	return dockerapi.BuildArchive(ImageTag, dockerapi.ImageConfig{
		Cmd:          []string{"/bin/sh", "-c", cmd},
		Env:          []string{"PATH=/bin"},
		ExposedPorts: []string{strconv.Itoa(port) + "/tcp"},
		Labels:       map[string]string{"org.opencontainers.image.title": "mason demo: answers with its node's name"},
	}, files)
}

// Run implements role.Role.
func (Image) Run(ctx context.Context, rc *role.Context, in ImageIn) (ImageOut, error) {
	archive, id, err := DemoImage(in.Busybox, in.Port)
	if err != nil {
		return ImageOut{}, err
	}
	e, err := newEngines(ctx, rc)
	if err != nil {
		return ImageOut{}, err
	}
	c := e.at(in.Engine.Value.IP)
	defer c.Close()
	if img, err := c.Image(ctx, ImageTag); err == nil && img.ID == id {
		return ImageOut{Tag: ImageTag, ID: id}, nil
	} else if err != nil && !dockerapi.IsNotFound(err) {
		return ImageOut{}, err
	}
	if err := c.ImageLoad(ctx, bytes.NewReader(archive)); err != nil {
		return ImageOut{}, fmt.Errorf("loading %s into the engine on %s: %w", ImageTag, rc.Node().Name, err)
	}
	img, err := c.Image(ctx, ImageTag)
	if err != nil {
		return ImageOut{}, err
	}
	if img.ID != id {
		return ImageOut{}, fmt.Errorf("engine on %s loaded %s as %s, expected %s", rc.Node().Name, ImageTag, img.ID, id)
	}
	rc.Log().Info("loaded the demo image", "image", ImageTag, "id", id, "bytes", len(archive))
	return ImageOut{Tag: ImageTag, ID: id}, nil
}

// Check reports drift when the engine lost the image or busybox changed.
func (Image) Check(ctx context.Context, rc *role.Context, in ImageIn, last ImageOut) (string, error) {
	_, id, err := DemoImage(in.Busybox, in.Port)
	if err != nil {
		return "", err
	}
	if id != last.ID {
		return "the demo image built from " + in.Busybox + " changed", nil
	}
	e, err := newEngines(ctx, rc)
	if err != nil {
		return "", err
	}
	c := e.at(in.Engine.Value.IP)
	defer c.Close()
	img, err := c.Image(ctx, ImageTag)
	switch {
	case dockerapi.IsNotFound(err) || (err == nil && img.ID != last.ID):
		return ImageTag + " is missing from the engine on " + rc.Node().Name, nil
	case err != nil:
		// An engine that does not answer is the engine role's drift;
		// once it runs again this role learns whether it must re-run.
		return "", nil
	}
	return "", nil
}
