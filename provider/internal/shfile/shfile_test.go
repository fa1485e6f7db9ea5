package shfile

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/provider"
)

func TestCommandLineRoundTrip(t *testing.T) {
	tests := []provider.Command{
		{Args: []string{"echo", "plain"}},
		{Args: []string{"printf", "%s|", "a b", "it's", `"q"`, "$HOME", "`x`", "", "\\n", "ü"}},
		{Args: []string{"sh", "-c", `printf '%s|%s' "$A" "$(pwd)"`}, Env: []string{"A=x y'z"}, Dir: "/tmp"},
	}
	want := []string{"plain\n", "a b|it's|\"q\"|$HOME|`x`||\\n|ü|", "x y'z|/tmp"}
	for i, cmd := range tests {
		out, err := exec.Command("sh", "-c", CommandLine(cmd)).Output()
		require.NoError(t, err, CommandLine(cmd))
		require.Equal(t, want[i], string(out))
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "": "''", "a b": "'a b'", "it's": `'it'\''s'`, "/x-y_z.1": "/x-y_z.1"} {
		require.Equal(t, want, Quote(in))
	}
}
