package dockerapi

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestArchiveIsReproducibleAndLoadable(t *testing.T) {
	files := []File{{Path: "bin/sh", Link: "busybox"}, {Path: "bin", Dir: true}, {Path: "bin/busybox", Mode: 0o755, Data: []byte("ELF")}}
	cfg := ImageConfig{Cmd: []string{"/bin/sh"}, ExposedPorts: []string{"8080/tcp"}}
	a, err := Build(cfg, files)
	require.NoError(t, err)
	b, err := Build(cfg, append([]File(nil), files[2], files[0], files[1]))
	require.NoError(t, err)
	require.Equal(t, a.ID, b.ID, "the order of files does not matter")
	arA, err := a.Archive("demo:1")
	require.NoError(t, err)
	arB, err := b.Archive("demo:1")
	require.NoError(t, err)
	require.Equal(t, arA, arB, "same bytes")

	other, err := Build(ImageConfig{Cmd: []string{"/bin/true"}}, files)
	require.NoError(t, err)
	require.NotEqual(t, a.ID, other.ID)

	// The archive is what `docker load` reads: a manifest naming the
	// config and the layer, whose digest the config records.
	entries := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(arA))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		entries[h.Name] = data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	require.NoError(t, json.Unmarshal(entries["manifest.json"], &manifest))
	require.Len(t, manifest, 1)
	require.Equal(t, []string{"demo:1"}, manifest[0].RepoTags)
	require.Equal(t, a.ID[len("sha256:"):]+".json", manifest[0].Config)
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	require.NoError(t, json.Unmarshal(entries[manifest[0].Config], &config))
	require.Len(t, manifest[0].Layers, 1)
	layer := entries[manifest[0].Layers[0]]
	require.Equal(t, []string{"sha256:" + sha256Hex(layer)}, config.RootFS.DiffIDs)
	var names []string
	lr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
	}
	require.Equal(t, []string{"bin/", "bin/busybox", "bin/sh"}, names, "parents first")
}
