// Package shfile implements Transport.Put and Transport.Get on top of a
// command runner and the node's own POSIX shell, and quotes arguments for
// transports that take a command line (SSH).
package shfile

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/masonops/mason/provider"
)

// RunFunc runs one command, like provider.Transport.Run.
type RunFunc func(ctx context.Context, cmd provider.Command) (provider.Result, error)

// notFoundCode is the exit status the get script uses for a missing file.
const notFoundCode = 44

// putScript writes stdin to a temporary file beside the target, sets mode
// and owner, then renames it over the target, so readers see the old file or
// the new one.
const putScript = `set -eu
dst=$1 mode=$2 owner=$3
dir=$(dirname -- "$dst")
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.mason-put.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat >"$tmp"
chmod "$mode" -- "$tmp"
if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi
mv -f -- "$tmp" "$dst"
trap - EXIT
`

const getScript = `if [ ! -f "$1" ]; then echo "no such file: $1" >&2; exit 44; fi
exec cat -- "$1"`

// Put writes data to path through run.
func Put(ctx context.Context, run RunFunc, path string, data io.Reader, opts provider.FileOptions) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("put %s: path must be absolute", path)
	}
	mode := opts.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	owner := opts.Owner
	if opts.Group != "" {
		owner += ":" + opts.Group
	}
	cmd := provider.Command{
		Args:    []string{"sh", "-c", putScript, "mason-put", path, fmt.Sprintf("%04o", mode), owner},
		Stdin:   data,
		Timeout: 5 * time.Minute,
	}
	res, err := run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("put %s: %w", path, err)
	}
	if err := res.Err(cmd); err != nil {
		return fmt.Errorf("put %s: %w", path, err)
	}
	return nil
}

// Get reads path through run. A missing file gives an error wrapping
// fs.ErrNotExist.
func Get(ctx context.Context, run RunFunc, path string) ([]byte, error) {
	cmd := provider.Command{Args: []string{"sh", "-c", getScript, "mason-get", path}, Timeout: 5 * time.Minute}
	res, err := run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", path, err)
	}
	if res.ExitCode == notFoundCode {
		return nil, fmt.Errorf("get %s: %w", path, fs.ErrNotExist)
	}
	if err := res.Err(cmd); err != nil {
		return nil, fmt.Errorf("get %s: %w", path, err)
	}
	return res.Stdout, nil
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// CommandLine renders cmd as one shell command line: working directory,
// environment and arguments, each quoted.
func CommandLine(cmd provider.Command) string {
	var b strings.Builder
	if cmd.Dir != "" {
		b.WriteString("cd " + Quote(cmd.Dir) + " && ")
	}
	b.WriteString("exec")
	if len(cmd.Env) > 0 {
		b.WriteString(" env")
		for _, e := range cmd.Env {
			b.WriteString(" " + Quote(e))
		}
	}
	for _, a := range cmd.Args {
		b.WriteString(" " + Quote(a))
	}
	return b.String()
}
