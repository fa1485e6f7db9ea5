package dockerapi

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
)

// File is one entry of an image's single layer: a regular file (Data), a
// directory (Dir) or a symbolic link (Link).
type File struct {
	Path string
	Mode int64
	Data []byte
	Dir  bool
	Link string
}

// ImageConfig is what a container of the image runs.
type ImageConfig struct {
	Cmd          []string
	Env          []string
	ExposedPorts []string // "8080/tcp"
	WorkingDir   string
	Labels       map[string]string
}

// epoch is the time stamp of every entry and of the image, so the same
// files always give the same image ID.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Built is an image built without an engine or a registry: one layer
// holding files, and its config. It is reproducible: the same files and
// config give the same bytes and the same ID.
type Built struct {
	// ID is the image ID ("sha256:..."), the digest of its config.
	ID     string
	config []byte
	layer  []byte
}

// ShortID is the first 12 hex digits of the ID, as docker shows it.
func (b *Built) ShortID() string { return b.ID[len("sha256:") : len("sha256:")+12] }

// Build builds an image of one layer holding files.
func Build(cfg ImageConfig, files []File) (*Built, error) {
	layer, err := layerTar(files)
	if err != nil {
		return nil, err
	}
	diffID := sha256.Sum256(layer)
	ports := map[string]struct{}{}
	for _, p := range cfg.ExposedPorts {
		ports[p] = struct{}{}
	}
	type containerConfig struct {
		Cmd          []string            `json:"Cmd,omitempty"`
		Env          []string            `json:"Env,omitempty"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
		WorkingDir   string              `json:"WorkingDir,omitempty"`
		Labels       map[string]string   `json:"Labels,omitempty"`
	}
	config, err := json.Marshal(struct {
		Architecture string          `json:"architecture"`
		OS           string          `json:"os"`
		Created      time.Time       `json:"created"`
		Config       containerConfig `json:"config"`
		RootFS       struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		History []map[string]any `json:"history"`
	}{
		Architecture: "amd64", OS: "linux", Created: epoch,
		Config: containerConfig{Cmd: cfg.Cmd, Env: cfg.Env, ExposedPorts: ports, WorkingDir: cfg.WorkingDir, Labels: cfg.Labels},
		RootFS: struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		}{Type: "layers", DiffIDs: []string{"sha256:" + hex.EncodeToString(diffID[:])}},
		History: []map[string]any{{"created": epoch, "created_by": "mason examples/swarm (dockerapi.BuildArchive)"}},
	})
	if err != nil {
		return nil, err
	}
	cfgSum := sha256.Sum256(config)
	return &Built{ID: "sha256:" + hex.EncodeToString(cfgSum[:]), config: config, layer: layer}, nil
}

// Archive returns the image in the format of `docker save`, named tag, for
// [Client.ImageLoad].
func (b *Built) Archive(tag string) ([]byte, error) {
	cfgName := strings.TrimPrefix(b.ID, "sha256:") + ".json"
	diffID := sha256.Sum256(b.layer)
	layerName := hex.EncodeToString(diffID[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": []string{layerName}}})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name string
		data []byte
	}{{cfgName, b.config}, {path.Dir(layerName) + "/", nil}, {layerName, b.layer}, {"manifest.json", manifest}} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// layerTar writes files as a layer, parents before children.
func layerTar(files []File) ([]byte, error) {
	fs := append([]File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range fs {
		name := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if name == "" {
			return nil, fmt.Errorf("dockerapi: image file with empty path")
		}
		h := &tar.Header{Name: name, Mode: f.Mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
