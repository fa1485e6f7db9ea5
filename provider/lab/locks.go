package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Locks that hold between processes (flock on files in the lab's
// directory; the kernel releases them when a process dies, so a crash
// never leaves one held):
//
//   - use.lock, shared by every Create and Delete, exclusive for Teardown,
//     so a teardown waits for nodes being made and no node is made into a
//     lab being torn down;
//   - locks/ID, exclusive, held by Create and Delete of node ID from before
//     anything of the node exists until it is complete: a second process
//     waits, then finds the node made (or, if the first one died, its
//     leftovers, which it may then clear).
const (
	useLock  = "use.lock"
	locksDir = "locks"
)

// flockCtx takes a flock on path (creating the file), waiting until ctx
// ends; the returned func releases it.
func flockCtx(ctx context.Context, path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errTornDown
	}
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s (another process is working on it): %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// errTornDown reports a lab whose directory is gone.
var errTornDown = errors.New("the lab was torn down (its directory is gone): open it again")

// useShared holds the lab for one Create or Delete, and checks it was not
// torn down meanwhile.
func (l *Lab) useShared(ctx context.Context) (func(), error) {
	unlock, err := flockCtx(ctx, filepath.Join(l.dir, useLock), unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(l.dir, stateFile)); err != nil {
		unlock()
		return nil, errTornDown
	}
	return unlock, nil
}

// lockNode takes node id's lock, across processes and within this one.
func (l *Lab) lockNode(ctx context.Context, id string) (func(), error) {
	dir := filepath.Join(l.dir, locksDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errTornDown
		}
		return nil, fmt.Errorf("create lock directory: %w", err)
	}
	return flockCtx(ctx, filepath.Join(dir, id), unix.LOCK_EX)
}
