package kube

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"
)

// Image names. No registry is reachable from lab nodes, so both images are
// made on the controller and imported into each worker's containerd; pods
// use them with imagePullPolicy: Never.
const (
	PauseImage   = "registry.k8s.io/pause:3.10"
	BusyboxImage = "docker.io/library/busybox:mason"
)

// imageFile is one file of an image's single layer.
type imageFile struct {
	path string
	data []byte
	mode int64
	link string // symlink target, when set
}

// PauseImageTar builds the pause image (a docker-archive tarball, which
// `ctr images import` reads) from the static pause binary.
func PauseImageTar(pauseBinary string) ([]byte, error) {
	b, err := os.ReadFile(pauseBinary)
	if err != nil {
		return nil, err
	}
	return imageTar(PauseImage, []string{"/pause"}, nil, []imageFile{{path: "pause", data: b, mode: 0o755}})
}

// BusyboxImageTar builds a busybox image from Debian's static busybox
// (busybox-static): the binary and a link for each applet the smoke test
// uses.
func BusyboxImageTar(busybox string) ([]byte, error) {
	b, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("the busybox image needs a static busybox (apt-get install busybox-static): %w", err)
	}
	files := []imageFile{{path: "bin/", mode: 0o755}, {path: "bin/busybox", data: b, mode: 0o755}, {path: "tmp/", mode: 0o1777},
		{path: "etc/", mode: 0o755}, {path: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), mode: 0o644},
		{path: "etc/group", data: []byte("root:x:0:\nnogroup:x:65534:\n"), mode: 0o644}}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "sleep", "wget", "nc", "nslookup", "hostname", "httpd", "ip", "ping", "env", "date", "mkdir", "grep", "ps", "true"} {
		files = append(files, imageFile{path: "bin/" + applet, link: "busybox", mode: 0o777})
	}
	return imageTar(BusyboxImage, []string{"/bin/sh"}, []string{"PATH=/bin"}, files)
}

// imageTar writes a docker-archive: manifest.json, the image config and one
// layer, with fixed timestamps so the same inputs give the same image ID.
func imageTar(ref string, cmd, env []string, files []imageFile) ([]byte, error) {
	epoch := time.Unix(0, 0)
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		case len(f.path) > 0 && f.path[len(f.path)-1] == '/':
			h.Typeflag = tar.TypeDir
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := lw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := lw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := lw.Close(); err != nil {
		return nil, err
	}
	layerSum := sha256.Sum256(layer.Bytes())
	diffID := "sha256:" + hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": epoch.UTC().Format(time.RFC3339),
		"config": map[string]any{"Cmd": cmd, "Env": env},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		return nil, err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := hex.EncodeToString(layerSum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{ref}, "Layers": []string{layerName}}})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerName, layer.Bytes()}, {"manifest.json", manifest}} {
		if err := w.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
