// Package unitop holds what the two implementations of provider.Units
// (the lab's supervisor and systemd) share about the shell scripts that
// carry out their operations: exit statuses, the check that a unit's
// program exists, and turning a script's result into an error.
package unitop

import (
	"fmt"
	"strings"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/internal/shfile"
)

// Exit statuses of the operation scripts.
const (
	// ExitNotInstalled: the unit is not installed.
	ExitNotInstalled = 44
	// ExitNotExecutable: the unit's program is not an executable file.
	ExitNotExecutable = 45
)

// CheckProgram is a shell line that fails with ExitNotExecutable, and says
// why, when u's program is not an executable file on the node.
func CheckProgram(u provider.Unit) string {
	prog := shfile.Quote(u.Command[0])
	msg := shfile.Quote(fmt.Sprintf("unit %s: %s is not an executable file on this node", u.Name, u.Command[0]))
	return fmt.Sprintf("if [ ! -f %[1]s ] || [ ! -x %[1]s ]; then echo %[2]s >&2; exit %[3]d; fi\n", prog, msg, ExitNotExecutable)
}

// Outcome turns the result of running an operation's script into its
// output or an error: one wrapping provider.ErrUnitNotFound for
// ExitNotInstalled, else the script's message. who prefixes errors
// ("lab", "systemd").
func Outcome(who, op, name string, res provider.Result, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("%s: %s unit %s: %w", who, op, name, err)
	}
	switch res.ExitCode {
	case 0:
		return string(res.Stdout), nil
	case ExitNotInstalled:
		return "", fmt.Errorf("%s: %s unit %s: %w", who, op, name, provider.ErrUnitNotFound)
	}
	msg := strings.TrimSpace(string(res.Stderr))
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", res.ExitCode)
	}
	return "", fmt.Errorf("%s: %s unit %s: %s", who, op, name, msg)
}
