package kube

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The cache's digests are trusted while each binary keeps the size and
// modification time it had when hashed, re-checked when either changes,
// and a binary whose content changed is refused.
func TestReadArtifactsRehashesOnlyChangedStamps(t *testing.T) {
	dir := t.TempDir()
	for _, name := range Binaries {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("binary "+name), 0o755))
	}
	require.NoError(t, writeSums(dir))
	a, err := readArtifacts("v1.34.4", dir)
	require.NoError(t, err)
	p := filepath.Join(dir, "kubelet")
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, FileStamp{Size: fi.Size(), ModTime: fi.ModTime()}, a.Stamps["kubelet"])

	// Touched, same content: hashed again, accepted, the new stamp kept.
	later := fi.ModTime().Add(time.Hour)
	require.NoError(t, os.Chtimes(p, later, later))
	a, err = readArtifacts("v1.34.4", dir)
	require.NoError(t, err)
	require.True(t, a.Stamps["kubelet"].ModTime.Equal(later))
	b, err := readArtifacts("v1.34.4", dir)
	require.NoError(t, err)
	require.Equal(t, a.Stamps, b.Stamps, "the new stamp was recorded")

	// Same size, other content, the old time put back: the stamp is
	// trusted (the file is not read) — the documented trade-off.
	require.NoError(t, os.WriteFile(p, []byte("BINARY kubelet"), 0o755))
	require.NoError(t, os.Chtimes(p, later, later))
	_, err = readArtifacts("v1.34.4", dir)
	require.NoError(t, err)

	// Another time too: hashed and refused.
	require.NoError(t, os.Chtimes(p, later.Add(time.Minute), later.Add(time.Minute)))
	_, err = readArtifacts("v1.34.4", dir)
	require.ErrorContains(t, err, "kubelet changed since it was built")

	// Missing stamps (a cache written before them): everything hashed.
	require.NoError(t, os.WriteFile(p, []byte("binary kubelet"), 0o755))
	require.NoError(t, os.Remove(filepath.Join(dir, "STAMPS")))
	a, err = readArtifacts("v1.34.4", dir)
	require.NoError(t, err)
	require.Len(t, a.Stamps, len(Binaries))
	_, err = os.Stat(filepath.Join(dir, "STAMPS"))
	require.NoError(t, err, "and recorded for the next run")
}
