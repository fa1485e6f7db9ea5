package kube

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScratchModuleReplacesEveryStagingModule(t *testing.T) {
	upstream := []byte(`module k8s.io/kubernetes

go 1.24.0

require k8s.io/api v0.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	github.com/x/y => github.com/x/y v1.0.0
)
`)
	mod, err := scratchModule("v1.34.4", upstream)
	require.NoError(t, err)
	require.Contains(t, mod, "require k8s.io/kubernetes v1.34.4")
	require.Contains(t, mod, "\tk8s.io/api => k8s.io/api v0.34.4\n")
	require.Contains(t, mod, "\tk8s.io/client-go => k8s.io/client-go v0.34.4\n")
	require.NotContains(t, mod, "github.com/x/y")

	_, err = scratchModule("v1.34.4", []byte("module k8s.io/kubernetes\n"))
	require.ErrorContains(t, err, "replaces no staging modules")
}

func TestGoBuildRefusesBadVersions(t *testing.T) {
	for _, v := range []string{"1.34.4", "v2.0.0", "v1.34", "latest"} {
		_, err := GoBuild{Cache: t.TempDir()}.Fetch(context.Background(), v, io.Discard)
		require.ErrorContains(t, err, "want v1.MINOR.PATCH", v)
	}
}

// serveBinaries serves fake release files on loopback and counts requests.
func serveBinaries(t *testing.T, tamper string) (*httptest.Server, map[string]string, *atomic.Int64) {
	sums := map[string]string{}
	var hits atomic.Int64
	for _, b := range Binaries {
		h := sha256.Sum256([]byte("binary " + b))
		sums[b] = hex.EncodeToString(h[:])
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		name := filepath.Base(r.URL.Path)
		require.Contains(t, r.URL.Path, "/v1.34.4/bin/linux/")
		body := "binary " + name
		if name == tamper {
			body += " (tampered)"
		}
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, sums, &hits
}

func TestDownloadChecksPinnedSums(t *testing.T) {
	ctx := context.Background()
	srv, sums, hits := serveBinaries(t, "")
	cache := t.TempDir()
	d := Download{URL: srv.URL + "/release/{version}/bin/linux/{arch}/{name}", SHA256: map[string]map[string]string{"v1.34.4": sums}, Cache: cache}
	a, err := d.Fetch(ctx, "v1.34.4", io.Discard)
	require.NoError(t, err)
	require.Equal(t, int64(len(Binaries)), hits.Load())
	for _, b := range Binaries {
		got, err := os.ReadFile(a.Path(b))
		require.NoError(t, err)
		require.Equal(t, "binary "+b, string(got))
		require.Equal(t, sums[b], a.SHA256[b])
	}
	// Cached: nothing is downloaded again.
	_, err = d.Fetch(ctx, "v1.34.4", io.Discard)
	require.NoError(t, err)
	require.Equal(t, int64(len(Binaries)), hits.Load())
}

func TestDownloadRefusesTamperedAndUnpinnedFiles(t *testing.T) {
	ctx := context.Background()
	srv, sums, _ := serveBinaries(t, "kubelet")
	d := Download{URL: srv.URL + "/{version}/bin/linux/{arch}/{name}", SHA256: map[string]map[string]string{"v1.34.4": sums}, Cache: t.TempDir()}
	_, err := d.Fetch(ctx, "v1.34.4", io.Discard)
	require.ErrorContains(t, err, "refusing it")
	require.NoFileExists(t, filepath.Join(d.Cache, "v1.34.4", "download", "kubelet"))

	d.SHA256 = nil
	_, err = d.Fetch(ctx, "v1.34.4", io.Discard)
	require.ErrorContains(t, err, "no pinned SHA-256")
}

func TestImageTarIsADockerArchive(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF pause"), 0o755))
	b, err := PauseImageTar(bin)
	require.NoError(t, err)
	again, err := PauseImageTar(bin)
	require.NoError(t, err)
	require.Equal(t, b, again, "the same inputs make the same image")

	files := map[string][]byte{}
	r := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data, _ := io.ReadAll(r)
		files[h.Name] = data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	require.NoError(t, json.Unmarshal(files["manifest.json"], &manifest))
	require.Len(t, manifest, 1)
	require.Equal(t, []string{PauseImage}, manifest[0].RepoTags)
	require.Contains(t, files, manifest[0].Config)
	layer := files[manifest[0].Layers[0]]
	sum := sha256.Sum256(layer)
	require.Contains(t, string(files[manifest[0].Config]), "sha256:"+hex.EncodeToString(sum[:]), "the config names the layer's diff ID")
	lr := tar.NewReader(bytes.NewReader(layer))
	h, err := lr.Next()
	require.NoError(t, err)
	require.Equal(t, "pause", h.Name)
	require.True(t, strings.HasPrefix(string(files[manifest[0].Config]), "{"))
}
