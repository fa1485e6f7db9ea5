package mason_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every Example of the front door, the command line and the progress
// display is complete on its own page: copied alone into a module of its
// own (which can see nothing of the package's other test files), it
// compiles and its output still matches.
func TestExamplesStandAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module per example file; not in -short runs")
	}
	root, err := filepath.Abs(".")
	require.NoError(t, err)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	for _, file := range []string{"example_test.go", "cli/example_test.go", "progress/example_test.go"} {
		t.Run(file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(root, file))
			require.NoError(t, err)
			pkg, _, _ := strings.Cut(string(src), "\n")
			require.True(t, strings.HasPrefix(pkg, "package ") && strings.HasSuffix(pkg, "_test"), "%s is an external test package: %s", file, pkg)
			dir := t.TempDir()
			mod := "module alone\n\ngo 1.26\n\nrequire github.com/masonops/mason v0.0.0\n\nreplace github.com/masonops/mason => " + root + "\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
			body := "package alone_test" + strings.TrimPrefix(string(src), pkg)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "example_test.go"), []byte(body), 0o644))
			cmd := exec.Command("go", "test", "-count=1", "-run", "^Example", ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s alone:\n%s", file, out)
		})
	}
}
