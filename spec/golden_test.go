package spec_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the loader's output")

// TestGoldenDiagnostics loads every bad spec in testdata and compares its
// diagnostics, one a line with file:line:col, with the .golden file next
// to it. Every bad spec must fail, and every diagnostic must point at the
// source.
func TestGoldenDiagnostics(t *testing.T) {
	files, err := filepath.Glob("testdata/*.hcl")
	require.NoError(t, err)
	n := 0
	for _, path := range files {
		name := filepath.Base(path)
		if strings.HasPrefix(name, "good") {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(name, ".hcl"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			require.NoError(t, err)
			_, diags := spec.Load(testRegistry(), []spec.File{{Name: name, Src: src}}, spec.Options{})
			require.True(t, diags.HasErrors(), "a bad spec must fail to load")
			for _, d := range diags {
				require.NotNil(t, d.Subject, "diagnostic without a location: %s: %s", d.Summary, d.Detail)
				require.NotEmpty(t, d.Detail, "diagnostic without a detail: %s", d.Summary)
			}
			got := spec.Format(diags)
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./spec -run Golden -update to create it")
			require.Equal(t, string(want), got)
		})
	}
	require.GreaterOrEqual(t, n, 10, "want at least ten bad specs")
}
