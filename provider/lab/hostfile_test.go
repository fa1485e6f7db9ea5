package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

// hostFileFixture is a lab with one node and a 4 MiB random file on the
// controller, in a directory on the lab's file system.
func hostFileFixture(t *testing.T) (*provider.Node, HostFile, []byte) {
	l := openLab(t, Options{Name: uniqueName("kube-hf")})
	ctx := ctxT(t, 2*time.Minute)
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "hf"})
	require.NoError(t, err)
	data := make([]byte, 4<<20)
	_, err = rand.Read(data)
	require.NoError(t, err)
	src := filepath.Join(t.TempDir(), "prog")
	require.NoError(t, os.WriteFile(src, data, 0o755))
	require.NoError(t, os.Chmod(src, 0o755)) // whatever the umask
	hf, err := StatHostFile(src)
	require.NoError(t, err)
	return n, hf, data
}

func nodeStat(t *testing.T, n *provider.Node, file string) string {
	t.Helper()
	res, err := n.Transport.Run(context.Background(), provider.Command{Args: []string{"stat", "-c", "%a %U %i %h", file}})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "stat %s: %s", file, res.Stderr)
	return strings.TrimSpace(string(res.Stdout))
}

func TestInstallHostFile(t *testing.T) {
	n, src, data := hostFileFixture(t)
	ctx := ctxT(t, 2*time.Minute)
	hf, err := provider.CapabilityOf[HostFiles](n)
	require.NoError(t, err, "lab nodes offer HostFiles")

	var srcStat syscall.Stat_t
	require.NoError(t, syscall.Stat(src.Path, &srcStat))
	var labStat syscall.Stat_t
	var info *NodeInfo
	require.True(t, n.As(&info))
	require.NoError(t, syscall.Stat(info.Dir, &labStat))
	sameFS := srcStat.Dev == labStat.Dev

	t.Run("SameModeLinksOrClones", func(t *testing.T) {
		how, err := hf.InstallHostFile(ctx, "/var/lib/hf/bin/prog", src, provider.FileOptions{Mode: 0o755})
		require.NoError(t, err)
		if sameFS {
			require.Contains(t, []HostFileMethod{Reflinked, HardLinked}, how, "the source is on the node's file system")
		}
		got, err := n.Transport.Get(ctx, "/var/lib/hf/bin/prog")
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got), "the node reads the source's bytes")
		st := strings.Fields(nodeStat(t, n, "/var/lib/hf/bin/prog"))
		require.Equal(t, "755", st[0])
		require.Equal(t, "root", st[1])
		if how == HardLinked {
			require.Equal(t, srcStat.Ino, parseUint(t, st[2]), "a hard link is the source's inode")
		}
		// Installing again replaces the file atomically and leaves no
		// temporary file behind.
		_, err = hf.InstallHostFile(ctx, "/var/lib/hf/bin/prog", src, provider.FileOptions{Mode: 0o755})
		require.NoError(t, err)
		ls := nodeRun(t, n, "ls", "-a", "/var/lib/hf/bin")
		require.Equal(t, []string{".", "..", "prog"}, strings.Fields(ls))
	})

	t.Run("OtherModeOrOwnerIsACopy", func(t *testing.T) {
		how, err := hf.InstallHostFile(ctx, "/var/lib/hf/key", src, provider.FileOptions{Mode: 0o600, Owner: "nobody"})
		require.NoError(t, err)
		require.NotEqual(t, HardLinked, how, "a hard link would change the source's mode and owner")
		st := strings.Fields(nodeStat(t, n, "/var/lib/hf/key"))
		require.Equal(t, []string{"600", "nobody"}, st[:2])
		require.NotEqual(t, srcStat.Ino, parseUint(t, st[2]))
		got, err := n.Transport.Get(ctx, "/var/lib/hf/key")
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got))
		fi, err := os.Stat(src.Path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "the source is untouched")
	})

	t.Run("OverlayDirectoryIsACopy", func(t *testing.T) {
		// The node's /etc is an overlay no host mount shows: no hard link.
		how, err := hf.InstallHostFile(ctx, "/etc/hf/prog", src, provider.FileOptions{Mode: 0o755})
		require.NoError(t, err)
		require.NotEqual(t, HardLinked, how)
		got, err := n.Transport.Get(ctx, "/etc/hf/prog")
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got))
		_, err = os.Stat("/etc/hf/prog")
		require.True(t, os.IsNotExist(err), "the host's /etc is untouched")
	})

	t.Run("ContentIsChecked", func(t *testing.T) {
		wrong := src
		wrong.SHA256 = strings.Repeat("0", 64)
		wrong.Size, wrong.ModTime = 0, time.Time{} // unknown: the file is hashed
		_, err := hf.InstallHostFile(ctx, "/var/lib/hf/wrong", wrong, provider.FileOptions{Mode: 0o755})
		require.ErrorContains(t, err, "refusing to install it")
		res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"test", "-e", "/var/lib/hf/wrong"}})
		require.NoError(t, err)
		require.NotEqual(t, 0, res.ExitCode, "nothing was installed")

		// A source changed since its digest was taken (its size and
		// modification time differ) is hashed again and refused.
		tampered := filepath.Join(t.TempDir(), "prog")
		require.NoError(t, os.WriteFile(tampered, append(bytes.Clone(data), 'x'), 0o755))
		stale := src
		stale.Path = tampered
		_, err = hf.InstallHostFile(ctx, "/var/lib/hf/tampered", stale, provider.FileOptions{Mode: 0o755})
		require.ErrorContains(t, err, "refusing to install it")

		// A stale size and time with the right content is fine: hashed.
		same := filepath.Join(t.TempDir(), "prog")
		require.NoError(t, os.WriteFile(same, data, 0o755))
		stale.Path = same
		_, err = hf.InstallHostFile(ctx, "/var/lib/hf/same", stale, provider.FileOptions{Mode: 0o755})
		require.NoError(t, err)

		_, err = hf.InstallHostFile(ctx, "/var/lib/hf/nosum", HostFile{Path: src.Path}, provider.FileOptions{})
		require.ErrorContains(t, err, "SHA256 is empty")
	})

	t.Run("BadInput", func(t *testing.T) {
		for _, dst := range []string{"relative/prog", "/var/lib/../lib/x", "/"} {
			_, err := hf.InstallHostFile(ctx, dst, src, provider.FileOptions{})
			require.ErrorContains(t, err, "must be absolute and clean", dst)
		}
		_, err := hf.InstallHostFile(ctx, "/var/lib/hf/dir", HostFile{Path: filepath.Dir(src.Path), SHA256: src.SHA256}, provider.FileOptions{})
		require.ErrorContains(t, err, "not a regular file")
	})
}

func nodeRun(t *testing.T, n *provider.Node, args ...string) string {
	t.Helper()
	res, err := n.Transport.Run(context.Background(), provider.Command{Args: args})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode, "%v: %s", args, res.Stderr)
	return string(res.Stdout)
}

func parseUint(t *testing.T, s string) uint64 {
	var v uint64
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		v = v*10 + uint64(c-'0')
	}
	return v
}

// BenchmarkInstallHostFile puts a 64 MiB file into a node with
// InstallHostFile and with Transport.Put (the stream through the node's
// shell), measured in the same run, and reports the ratio put/host-file.
func BenchmarkInstallHostFile(b *testing.B) {
	l := openLab(b, Options{Name: uniqueName("kube-hfb")})
	ctx := context.Background()
	n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: "hfb"})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64<<20)
	_, _ = rand.Read(data)
	src := filepath.Join(b.TempDir(), "prog")
	if err := os.WriteFile(src, data, 0o755); err != nil {
		b.Fatal(err)
	}
	_ = os.Chmod(src, 0o755)
	hf, err := StatHostFile(src)
	if err != nil {
		b.Fatal(err)
	}
	t := n.Transport.(*Transport)
	var fast, put time.Duration
	var how HostFileMethod
	for b.Loop() {
		began := time.Now()
		if how, err = t.InstallHostFile(ctx, "/var/lib/hfb/prog", hf, provider.FileOptions{Mode: 0o755}); err != nil {
			b.Fatal(err)
		}
		fast += time.Since(began)
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		began = time.Now()
		err = t.Put(ctx, "/var/lib/hfb/prog-put", f, provider.FileOptions{Mode: 0o755})
		put += time.Since(began)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("InstallHostFile used a %s", how)
	b.ReportMetric(float64(put)/float64(fast), "put/host-file")
	b.ReportMetric(float64(fast.Microseconds())/float64(b.N)/1000, "ms/host-file")
	b.ReportMetric(float64(put.Microseconds())/float64(b.N)/1000, "ms/put")
}
