package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masonops/mason/provider"
)

// HostFiles is an optional capability of a node's transport: the node sees
// the controller's file system, so a file of the controller's can be put
// into it without streaming its bytes through the transport. Lab nodes
// offer it (they are namespaces on the controller's machine); a role finds
// it like the other capabilities and streams with Transport.Put where it
// is missing:
//
//	if hf, err := provider.CapabilityOf[lab.HostFiles](n); err == nil {
//		how, err := hf.InstallHostFile(ctx, "/var/lib/kubernetes/bin/kubelet", src, provider.FileOptions{Mode: 0o755})
//		...
//	}
//
// Installing hundreds of megabytes of binaries into every node is then a
// link or a copy inside the kernel instead of a pipe through nsenter and a
// shell.
type HostFiles interface {
	// InstallHostFile makes the node's file path (absolute) hold the
	// content of the controller's file src, with opts' mode and owner,
	// atomically (a temporary file beside path, then a rename), creating
	// path's directory as Put does.
	//
	// The content is checked before anything is installed: src must be
	// the file src.SHA256 describes. When src.Size and src.ModTime are
	// set and the file still has them it is taken to hold that digest
	// without being read again (they are recorded when the digest is
	// computed); otherwise it is read and hashed, and a mismatch is
	// refused. The installed file is checked to be src's size (and, for a
	// hard link, src's inode).
	//
	// It tries, in order: a reflink (a copy-on-write clone, on file
	// systems that have them), a hard link (when path's directory is on
	// src's file system and src already has the wanted mode and owner —
	// the node then shares the controller's file and must treat it as
	// read-only: replace it by rename, as Put does, never rewrite it in
	// place), and an in-kernel copy. It reports which one it used.
	//
	// An error wrapping provider.ErrNoCapability means the node cannot
	// reach the file this way (stream it with Put instead); any other
	// error is a failure, such as a source that is not what src says.
	InstallHostFile(ctx context.Context, path string, src HostFile, opts provider.FileOptions) (HostFileMethod, error)
}

// HostFile is a file on the controller and what it is known to hold.
type HostFile struct {
	// Path is the file's absolute path on the controller.
	Path string
	// SHA256 is the hex SHA-256 of its content; required.
	SHA256 string
	// Size and ModTime are the file's size and modification time when
	// SHA256 was computed; zero means unknown (the file is hashed).
	Size    int64
	ModTime time.Time
}

// StatHostFile returns the HostFile for path with its size, modification
// time and SHA-256, reading the file once.
func StatHostFile(path string) (HostFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return HostFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return HostFile{}, err
	}
	sum, err := hashFile(f)
	if err != nil {
		return HostFile{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return HostFile{Path: path, SHA256: sum, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// HostFileMethod says how InstallHostFile put a file into a node.
type HostFileMethod string

// The ways InstallHostFile installs a file, fastest first.
const (
	Reflinked  HostFileMethod = "reflink"
	HardLinked HostFileMethod = "hard link"
	Copied     HostFileMethod = "copy"
)

var _ HostFiles = (*Transport)(nil)

// InstallHostFile implements HostFiles.
func (t *Transport) InstallHostFile(ctx context.Context, dst string, src HostFile, opts provider.FileOptions) (HostFileMethod, error) {
	fail := func(err error) (HostFileMethod, error) {
		return "", fmt.Errorf("lab: installing %s as %s in node (pid %d): %w", src.Path, dst, t.pid, err)
	}
	if !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
		return fail(errors.New("the node's path must be absolute and clean, and name a file"))
	}
	if !t.same() || exited(t.pid) {
		return fail(errors.New("node init is gone: delete the node and create it again"))
	}
	f, err := os.Open(src.Path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(errors.New("the source is not a regular file"))
	}
	if err := checkSource(f, fi, src); err != nil {
		return fail(err)
	}
	mode := opts.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	dir, name := path.Split(dst)
	dirFD, err := t.openNodeDir(ctx, dir)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(dirFD)

	tmp, err := tempName()
	if err != nil {
		return fail(err)
	}
	method, err := t.place(ctx, f, fi, dirFD, dir, tmp, mode, opts)
	if err != nil {
		_ = unix.Unlinkat(dirFD, tmp, 0)
		return fail(err)
	}
	if err := unix.Renameat(dirFD, tmp, dirFD, name); err != nil {
		_ = unix.Unlinkat(dirFD, tmp, 0)
		return fail(fmt.Errorf("renaming into place: %w", err))
	}
	// Renaming a hard link over another link of the same inode does
	// nothing (rename(2)): the file was in place already; drop the link.
	_ = unix.Unlinkat(dirFD, tmp, 0)
	return method, nil
}

// place makes dir/tmp in the node hold f's content with mode and owner,
// and checks it.
func (t *Transport) place(ctx context.Context, f *os.File, fi os.FileInfo, dirFD int, dir, tmp string, mode os.FileMode, opts provider.FileOptions) (HostFileMethod, error) {
	st := fi.Sys().(*syscall.Stat_t)
	// A hard link shares the inode, so its mode and owner are the
	// source's: only when they already are the wanted ones (root, as Put
	// leaves a file when no owner is asked).
	if opts.Owner == "" && opts.Group == "" && fi.Mode().Perm() == mode && st.Uid == 0 && st.Gid == 0 {
		if hostDir, ok := t.hostDirOf(dirFD, dir); ok {
			hfd, err := unix.Open(hostDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Linkat(unix.AT_FDCWD, f.Name(), hfd, tmp, 0)
				unix.Close(hfd)
				if err == nil {
					var got unix.Stat_t
					if err := unix.Fstatat(dirFD, tmp, &got, unix.AT_SYMLINK_NOFOLLOW); err != nil {
						return "", err
					}
					if got.Dev != st.Dev || got.Ino != st.Ino {
						return "", fmt.Errorf("the hard link in %s is not the source's inode", dir)
					}
					return HardLinked, nil
				}
			}
		}
	}
	fd, err := unix.Openat(dirFD, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(mode))
	if err != nil {
		return "", fmt.Errorf("creating a temporary file in %s: %w", dir, err)
	}
	out := os.NewFile(uintptr(fd), path.Join(dir, tmp))
	defer out.Close()
	method := Reflinked
	if err := unix.IoctlFileClone(fd, int(f.Fd())); err != nil {
		method = Copied
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		// os.File to os.File: copy_file_range, in the kernel.
		if _, err := io.Copy(out, f); err != nil {
			return "", fmt.Errorf("copying: %w", err)
		}
	}
	if err := out.Chmod(mode); err != nil {
		return "", err
	}
	got, err := out.Stat()
	if err != nil {
		return "", err
	}
	if got.Size() != fi.Size() {
		return "", fmt.Errorf("the %s holds %d bytes, the source %d", method, got.Size(), fi.Size())
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	if opts.Owner != "" || opts.Group != "" {
		// Names resolve in the node's own /etc.
		owner := opts.Owner
		if opts.Group != "" {
			owner += ":" + opts.Group
		}
		cmd := provider.Command{Args: []string{"chown", "--", owner, path.Join(dir, tmp)}, Timeout: time.Minute}
		res, err := t.Run(ctx, cmd)
		if err == nil {
			err = res.Err(cmd)
		}
		if err != nil {
			return "", err
		}
	}
	return method, nil
}

// checkSource refuses a source that is not what src says it holds.
func checkSource(f *os.File, fi os.FileInfo, src HostFile) error {
	if src.SHA256 == "" {
		return errors.New("HostFile.SHA256 is empty: say what the file must hold (lab.StatHostFile computes it)")
	}
	if src.Size != 0 && !src.ModTime.IsZero() && src.Size == fi.Size() && src.ModTime.Equal(fi.ModTime()) {
		return nil // unchanged since its digest was taken
	}
	sum, err := hashFile(f)
	if err != nil {
		return fmt.Errorf("hashing the source: %w", err)
	}
	if !strings.EqualFold(sum, src.SHA256) {
		return fmt.Errorf("the source's SHA-256 is %s, not %s: refusing to install it", sum, src.SHA256)
	}
	return nil
}

func hashFile(f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tempName() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return ".mason-hostfile." + hex.EncodeToString(b[:]), nil
}

// openNodeDir opens dir as the node sees it (through /proc/PID/root, with
// symlinks and ".." resolved inside the node's root), creating it through
// the node's shell when it is missing.
func (t *Transport) openNodeDir(ctx context.Context, dir string) (int, error) {
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", t.pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("the node's root: %w (%w)", err, provider.ErrNoCapability)
	}
	defer unix.Close(root)
	open := func() (int, error) {
		rel := strings.Trim(path.Clean(dir), "/")
		if rel == "" {
			rel = "."
		}
		return unix.Openat2(root, rel, &unix.OpenHow{
			Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	}
	fd, err := open()
	if errors.Is(err, unix.ENOENT) {
		cmd := provider.Command{Args: []string{"mkdir", "-p", "--", dir}, Timeout: time.Minute}
		res, rerr := t.Run(ctx, cmd)
		if rerr == nil {
			rerr = res.Err(cmd)
		}
		if rerr != nil {
			return -1, rerr
		}
		fd, err = open()
	}
	switch {
	case errors.Is(err, unix.ENOSYS):
		return -1, fmt.Errorf("opening %s: openat2 is not supported by this kernel (%w)", dir, provider.ErrNoCapability)
	case err != nil:
		return -1, fmt.Errorf("opening %s: %w", dir, err)
	}
	return fd, nil
}

// hostDirOf finds the controller's path of the node's directory dir (open
// as dirFD): the node's mount holding dir is found in its mount table, a
// mount of the same file system in the controller's, and the result is
// accepted only if it is the same directory (device and inode).
func (t *Transport) hostDirOf(dirFD int, dir string) (string, bool) {
	var want unix.Stat_t
	if unix.Fstat(dirFD, &want) != nil {
		return "", false
	}
	node, err := readMounts(fmt.Sprintf("/proc/%d/mountinfo", t.pid))
	if err != nil {
		return "", false
	}
	host, err := readMounts("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	dir = path.Clean(dir)
	var in *mount
	for i := range node {
		m := &node[i]
		if within(dir, m.point) && (in == nil || len(m.point) >= len(in.point)) {
			in = m
		}
	}
	if in == nil {
		return "", false
	}
	fsPath := path.Join(in.root, strings.TrimPrefix(dir, in.point))
	for _, h := range host {
		if h.dev != in.dev || !within(fsPath, h.root) {
			continue
		}
		cand := path.Join(h.point, strings.TrimPrefix(fsPath, h.root))
		var got unix.Stat_t
		if unix.Stat(cand, &got) == nil && got.Dev == want.Dev && got.Ino == want.Ino {
			return cand, true
		}
	}
	return "", false
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// mount is one line of a mountinfo file.
type mount struct {
	dev   string // major:minor
	root  string // the mounted directory within its file system
	point string // where it is mounted
}

func readMounts(file string) ([]mount, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		out = append(out, mount{dev: f[2], root: unescapeMount(f[3]), point: unescapeMount(f[4])})
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
