package kube

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/masonops/mason/deploy"
)

// Binaries are the programs a cluster runs, by file name. Pause is the
// sandbox's init (a static binary made into the pause image on workers).
var Binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "pause"}

// Artifacts is a directory on the controller holding the Binaries of one
// version, with each file's SHA-256 and the size and modification time it
// had when it was hashed.
type Artifacts struct {
	Version string
	Dir     string
	SHA256  map[string]string
	Stamps  map[string]FileStamp
}

// FileStamp is a file's size and modification time when its digest was
// taken: while the file still has them, its digest need not be computed
// again.
type FileStamp struct {
	Size    int64
	ModTime time.Time
}

// Path returns the local path of binary name.
func (a Artifacts) Path(name string) string { return filepath.Join(a.Dir, name) }

// Source provides the Kubernetes binaries of a version. It is pluggable:
// GoBuild compiles them from the Go module proxy (what this machine can
// reach), Download fetches release files and checks them against pinned
// checksums (what a real site does).
type Source interface {
	// Fetch returns the binaries of version, from its cache when it can.
	// Progress lines go to log.
	Fetch(ctx context.Context, version string, log io.Writer) (Artifacts, error)
}

// CacheRoot is where sources keep what they fetched or built, outside any
// repository: one directory per version and build inputs.
const CacheRoot = "/var/cache/mason/kubernetes"

// GoBuild builds the binaries from the Go module proxy in a scratch module
// that requires k8s.io/kubernetes at the version and replaces each of its
// staging modules (k8s.io/api, client-go, ...) with the matching v0.x
// release, as upstream's own go.mod does with local directories. The result
// is cached under Cache/<version>/<key>, where key digests every build input
// (Go version, platform, flags, go.mod, the pause source), so a cached
// build is used only for exactly the same inputs. Concurrent Fetches of the
// same build wait for one another (a file lock).
type GoBuild struct {
	// Cache is the cache root; "" means CacheRoot. Module and build caches
	// (GOMODCACHE, GOCACHE) live beside the builds, so a rebuild for a new
	// Go version or flag reuses the downloaded modules.
	Cache string
	// Go is the go command; "" means the one running this program's
	// toolchain (GOROOT/bin/go), else "go" from PATH.
	Go string
}

// Fetch implements Source.
func (g GoBuild) Fetch(ctx context.Context, version string, log io.Writer) (Artifacts, error) {
	if !strings.HasPrefix(version, "v1.") {
		return Artifacts{}, fmt.Errorf("kubernetes version %q: want v1.MINOR.PATCH", version)
	}
	parts := strings.Split(strings.TrimPrefix(version, "v"), ".")
	if len(parts) != 3 {
		return Artifacts{}, fmt.Errorf("kubernetes version %q: want v1.MINOR.PATCH", version)
	}
	root := g.Cache
	if root == "" {
		root = CacheRoot
	}
	goCmd := g.goCommand()
	goVer, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output()
	if err != nil {
		return Artifacts{}, fmt.Errorf("building kubernetes %s needs the go command (%s): %w", version, goCmd, err)
	}
	env := []string{
		"GOMODCACHE=" + filepath.Join(root, "gomod"),
		"GOCACHE=" + filepath.Join(root, "gocache"),
		"GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOTOOLCHAIN=local",
		"GOOS=linux", "GOARCH=" + runtime.GOARCH,
	}
	ldflags := "-s -w" +
		" -X k8s.io/component-base/version.gitVersion=" + version +
		" -X k8s.io/component-base/version.gitMajor=1" +
		" -X k8s.io/component-base/version.gitMinor=" + parts[1] +
		" -X k8s.io/client-go/pkg/version.gitVersion=" + version
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Artifacts{}, err
	}
	unlock, err := lockFile(ctx, filepath.Join(root, ".lock"))
	if err != nil {
		return Artifacts{}, err
	}
	defer unlock()

	// Upstream's go.mod lists the staging modules; ask the proxy for it.
	gomod, err := g.run(ctx, goCmd, env, root, "mod", "download", "-json", "k8s.io/kubernetes@"+version)
	if err != nil {
		return Artifacts{}, fmt.Errorf("fetching k8s.io/kubernetes@%s from the module proxy: %w", version, err)
	}
	var info struct{ GoMod string }
	if err := json.Unmarshal(gomod, &info); err != nil || info.GoMod == "" {
		return Artifacts{}, fmt.Errorf("go mod download k8s.io/kubernetes@%s: no go.mod in its answer", version)
	}
	upstream, err := os.ReadFile(info.GoMod)
	if err != nil {
		return Artifacts{}, err
	}
	mod, err := scratchModule(version, upstream)
	if err != nil {
		return Artifacts{}, err
	}
	key := digest(strings.TrimSpace(string(goVer)), runtime.GOARCH, ldflags, strings.Join(Binaries, ","), mod, pauseSource)
	dir := filepath.Join(root, version, key[:16])
	bin := filepath.Join(dir, "bin")
	if a, err := readArtifacts(version, bin); err == nil {
		fmt.Fprintf(log, "kubernetes %s: cached build in %s\n", version, bin)
		return a, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "src", "pause"), 0o755); err != nil {
		return Artifacts{}, err
	}
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(mod), 0o644); err != nil {
		return Artifacts{}, err
	}
	if err := os.WriteFile(filepath.Join(src, "pause", "main.go"), []byte(pauseSource), 0o644); err != nil {
		return Artifacts{}, err
	}
	start := time.Now()
	fmt.Fprintf(log, "kubernetes %s: building %s from the Go module proxy in %s (a cold build takes minutes; later runs use the cache)\n",
		version, strings.Join(Binaries, ", "), src)
	tmp := bin + ".tmp"
	_ = os.RemoveAll(tmp)
	args := []string{"build", "-trimpath", "-ldflags", ldflags, "-o", tmp + "/"}
	for _, b := range Binaries {
		if b == "pause" {
			args = append(args, "./pause")
		} else {
			args = append(args, "k8s.io/kubernetes/cmd/"+b)
		}
	}
	if _, err := g.run(ctx, goCmd, env, src, args...); err != nil {
		return Artifacts{}, fmt.Errorf("building kubernetes %s: %w", version, err)
	}
	if err := writeSums(tmp); err != nil {
		return Artifacts{}, err
	}
	_ = os.RemoveAll(bin)
	if err := os.Rename(tmp, bin); err != nil {
		return Artifacts{}, err
	}
	fmt.Fprintf(log, "kubernetes %s: built in %v\n", version, time.Since(start).Round(time.Second))
	return readArtifacts(version, bin)
}

func (g GoBuild) goCommand() string {
	if g.Go != "" {
		return g.Go
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func (g GoBuild) run(ctx context.Context, goCmd string, env []string, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args[:min(len(args), 2)], " "), err, tailLines(stderr.String(), 20))
	}
	return out, nil
}

// scratchModule writes the go.mod of the build: upstream's version, and a
// replace to the published release for every staging module upstream
// replaces with a local directory.
func scratchModule(version string, upstream []byte) (string, error) {
	staging := "v0." + strings.TrimPrefix(version, "v1.")
	var b strings.Builder
	b.WriteString("// Written by mason (examples/kubernetes): builds Kubernetes from the module proxy.\nmodule mason.local/kubebuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes " + version + "\n\nreplace (\n")
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(upstream))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "replace "))
		if len(f) == 3 && f[1] == "=>" && strings.HasPrefix(f[2], "./staging/") {
			fmt.Fprintf(&b, "\t%s => %s %s\n", f[0], f[0], staging)
			n++
		}
	}
	b.WriteString(")\n")
	if n == 0 {
		return "", fmt.Errorf("k8s.io/kubernetes@%s: its go.mod replaces no staging modules; this version cannot be built this way", version)
	}
	return b.String(), nil
}

// pauseSource is the sandbox init: it waits for SIGINT or SIGTERM and reaps
// the children it inherits, like upstream's pause.c.
const pauseSource = `// Command pause holds a pod's namespaces: it reaps children and exits on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
`

// Download fetches release binaries from URL (a template with {version},
// {arch} and {name}) and accepts a file only if its SHA-256 is the one
// pinned in SHA256 (by version, then name). Files are cached under
// Cache/<version>/download.
type Download struct {
	URL    string
	SHA256 map[string]map[string]string
	Cache  string
	Client *http.Client
}

// ReleaseURL is the upstream release layout, for Download.URL.
const ReleaseURL = "https://dl.k8s.io/release/{version}/bin/linux/{arch}/{name}"

// Fetch implements Source.
func (d Download) Fetch(ctx context.Context, version string, log io.Writer) (Artifacts, error) {
	sums := d.SHA256[version]
	root := d.Cache
	if root == "" {
		root = CacheRoot
	}
	bin := filepath.Join(root, version, "download")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return Artifacts{}, err
	}
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Minute}
	}
	for _, name := range Binaries {
		want := sums[name]
		if want == "" {
			return Artifacts{}, fmt.Errorf("kubernetes %s: no pinned SHA-256 for %s; refusing an unchecked download", version, name)
		}
		path := filepath.Join(bin, name)
		if got, err := fileSHA256(path); err == nil && got == want {
			continue
		}
		url := strings.NewReplacer("{version}", version, "{arch}", runtime.GOARCH, "{name}", name).Replace(d.URL)
		fmt.Fprintf(log, "kubernetes %s: downloading %s\n", version, url)
		if err := download(ctx, client, url, path, want); err != nil {
			return Artifacts{}, err
		}
	}
	if err := writeSums(bin); err != nil {
		return Artifacts{}, err
	}
	return readArtifacts(version, bin)
}

func download(ctx context.Context, client *http.Client, url, path, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dl-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("downloading %s: %w", url, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("downloading %s: SHA-256 is %s, pinned %s: refusing it", url, got, want)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeSums records each binary's SHA-256 in dir/SHA256SUMS (the format
// sha256sum -c reads), and in dir/STAMPS the size and modification time
// each file had when it was hashed.
func writeSums(dir string) error {
	var b strings.Builder
	stamps := map[string]FileStamp{}
	for _, name := range Binaries {
		sum, st, err := hashStamped(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, name)
		stamps[name] = st
	}
	if err := deploy.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return writeStamps(dir, stamps)
}

func writeStamps(dir string, stamps map[string]FileStamp) error {
	js, err := json.Marshal(stamps)
	if err != nil {
		return err
	}
	return deploy.WriteFile(filepath.Join(dir, "STAMPS"), js, 0o644)
}

// readArtifacts reads dir/SHA256SUMS and checks that every binary is there
// and still holds that digest: a file whose size and modification time are
// those recorded in dir/STAMPS when it was hashed is not read again (a
// converged run must not re-read ~460 MB), any other is hashed, and a
// changed binary is refused.
func readArtifacts(version, dir string) (Artifacts, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return Artifacts{}, err
	}
	a := Artifacts{Version: version, Dir: dir, SHA256: map[string]string{}, Stamps: map[string]FileStamp{}}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			a.SHA256[f[1]] = f[0]
		}
	}
	var recorded map[string]FileStamp
	if js, err := os.ReadFile(filepath.Join(dir, "STAMPS")); err == nil {
		_ = json.Unmarshal(js, &recorded) // unreadable: everything is hashed
	}
	rehashed := false
	for _, name := range Binaries {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if a.SHA256[name] == "" || err != nil {
			return Artifacts{}, fmt.Errorf("%s: %s missing", dir, name)
		}
		st := FileStamp{Size: fi.Size(), ModTime: fi.ModTime()}
		if old, ok := recorded[name]; !ok || old.Size != st.Size || !old.ModTime.Equal(st.ModTime) {
			sum, now, err := hashStamped(p)
			if err != nil {
				return Artifacts{}, err
			}
			if sum != a.SHA256[name] {
				return Artifacts{}, fmt.Errorf("%s: %s changed since it was built (SHA-256 %s, recorded %s): remove %s to build again", dir, name, sum, a.SHA256[name], filepath.Dir(dir))
			}
			st, rehashed = now, true
		}
		a.Stamps[name] = st
	}
	if rehashed {
		_ = writeStamps(dir, a.Stamps) // best effort: the next run hashes again without it
	}
	return a, nil
}

// hashStamped returns a file's SHA-256 and the stamp it had while hashed.
func hashStamped(path string) (string, FileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", FileStamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", FileStamp{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", FileStamp{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), FileStamp{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lockFile takes an exclusive lock on path, waiting for ctx.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another build holding %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
