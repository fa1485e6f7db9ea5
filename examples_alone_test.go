package mason_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every Example in the repository is complete on its own page: copied
// alone into a module of its own (which can see nothing of the package's
// other test files), each Example file compiles; those of the front door,
// the graph, the spec loader, the command line and the progress display
// also run there and their output still matches. (The others need labs,
// daemons or root, and run where they are.)
func TestExamplesStandAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module of every example file; not in -short runs")
	}
	root, err := filepath.Abs(".")
	require.NoError(t, err)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	run := map[string]bool{"example_test.go": true, "cli/example_test.go": true, "progress/example_test.go": true,
		"spec/example_test.go": true, "graph/example_test.go": true, "graph/dot_example_test.go": true, "role/example_test.go": true}

	dir := t.TempDir()
	mod := "module alone\n\ngo 1.26\n\nrequire github.com/masonops/mason v0.0.0\n\nreplace github.com/masonops/mason => " + root + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	var files, runs []string
	err = filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() && (strings.HasPrefix(de.Name(), ".") || de.Name() == "testdata") {
			return filepath.SkipDir
		}
		if de.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(src), "\nfunc Example") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		pkg, _, _ := strings.Cut(string(src), "\n")
		require.True(t, strings.HasPrefix(pkg, "package ") && strings.HasSuffix(pkg, "_test"), "%s is an external test package: %s", rel, pkg)
		// Each file is a package of its own in the module.
		name := "./" + strings.NewReplacer("/", "_", ".", "_").Replace(strings.TrimSuffix(rel, ".go"))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		// The package keeps its name: Examples print type names.
		require.NoError(t, os.WriteFile(filepath.Join(dir, name, "example_test.go"), src, 0o644))
		files = append(files, rel)
		if run[filepath.ToSlash(rel)] {
			runs = append(runs, name)
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, runs, len(run), "every file to run was found")
	require.Greater(t, len(files), len(run))

	gocmd := func(args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s, each example file alone (%d files: %s):\n%s", strings.Join(args, " "), len(files), strings.Join(files, ", "), out)
	}
	gocmd("vet", "./...") // compiles every one
	gocmd(append([]string{"test", "-count=1", "-run", "^Example"}, runs...)...)
}
