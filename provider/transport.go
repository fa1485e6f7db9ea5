package provider

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Transport runs commands on a node and moves files to and from it.
//
// Implementations must be safe for concurrent use. A non-zero exit status is
// not an error of the transport: it is reported in [Result.ExitCode], and
// [Result.Err] turns it into an error when the caller wants one.
type Transport interface {
	// Run executes cmd on the node and waits for it to finish or for ctx to
	// end. The returned error is about the transport (the command could not be
	// started, the connection broke, the timeout expired), never about the
	// command's exit status.
	Run(ctx context.Context, cmd Command) (Result, error)

	// Put writes data to path on the node with the given mode, creating
	// parent directories as needed. The write is atomic where the node's
	// filesystem allows it: readers see the old file or the new one.
	Put(ctx context.Context, path string, data io.Reader, opts FileOptions) error

	// Get reads the file at path on the node.
	Get(ctx context.Context, path string) ([]byte, error)
}

// Command is one command to run on a node.
type Command struct {
	// Args is the program and its arguments. It is executed directly, not
	// through a shell; use []string{"sh", "-c", script} for shell syntax.
	Args []string
	// Env holds extra environment variables as KEY=VALUE.
	Env []string
	// Dir is the working directory; empty means the transport's default.
	Dir string
	// Stdin, if set, is copied to the command's standard input.
	Stdin io.Reader
	// Timeout, if positive, bounds the run; expiry kills the command and
	// Run returns an error wrapping context.DeadlineExceeded.
	Timeout time.Duration
	// Batch marks a short command that only reads (a drift check: stat,
	// sha256sum, a version query) and may therefore run in one remote
	// shell together with other Batch commands queued for the same node,
	// saving a round trip and a session each; its output, exit status and
	// timeout stay its own. A command with Stdin is never batched.
	// Transports that do not batch ignore it; the ssh transport documents
	// its rules.
	Batch bool
}

// Result is what a finished command produced.
type Result struct {
	// Stdout and Stderr are the command's complete output.
	Stdout []byte
	Stderr []byte
	// ExitCode is the exit status; 128+N when signal N ended the command.
	ExitCode int
	// Duration is how long the command ran, as seen by the transport.
	Duration time.Duration
}

// Err returns nil for exit status 0 and an *ExitError otherwise.
func (r Result) Err(cmd Command) error {
	if r.ExitCode == 0 {
		return nil
	}
	return &ExitError{Args: cmd.Args, Code: r.ExitCode, Stderr: r.Stderr}
}

// ExitError reports a command that ran and exited with a non-zero status.
type ExitError struct {
	// Args is the command that ran.
	Args []string
	// Code is its exit status.
	Code int
	// Stderr is its standard error; Error shows at most the last 512 bytes.
	Stderr []byte
}

// Error implements the error interface.
func (e *ExitError) Error() string {
	const max = 512
	stderr := e.Stderr
	if len(stderr) > max {
		stderr = stderr[len(stderr)-max:]
	}
	return fmt.Sprintf("command %q exited with status %d: %s", e.Args, e.Code, stderr)
}

// FileOptions controls how Put writes a file.
type FileOptions struct {
	// Mode is the file's permission bits; zero means 0644. Keys and other
	// secrets should use 0600.
	Mode fs.FileMode
	// Owner and Group, when set, name the file's owner ("root", "1000").
	Owner string
	Group string
}
