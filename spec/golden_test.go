package spec_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
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

// TestGoldenReferenceOrder loads testdata/order, whose references name
// roles declared later in their file and in a file that sorts after
// theirs, in both file orders: it must load cleanly, and the references
// and the plan they wire (testdata/order.golden) must not depend on the
// order.
func TestGoldenReferenceOrder(t *testing.T) {
	paths, err := filepath.Glob("testdata/order/*.hcl")
	require.NoError(t, err)
	require.Len(t, paths, 2)
	var files []spec.File
	for _, p := range paths {
		src, err := os.ReadFile(p)
		require.NoError(t, err)
		files = append(files, spec.File{Name: filepath.ToSlash(p), Src: src})
	}
	describe := func(files []spec.File) string {
		s, diags := spec.Load(testRegistry(), files, spec.Options{})
		require.False(t, diags.HasErrors(), spec.Format(diags))
		var b strings.Builder
		b.WriteString("references:\n")
		for _, rb := range s.Roles {
			for _, r := range rb.Refs {
				via := "by type"
				if r.Attr != "" {
					via = "as attribute " + r.Attr
				}
				out := r.Output
				if out == "" {
					out = "(output)"
				}
				fmt.Fprintf(&b, "  %s.%s <- %s.%s, %s (%s:%d)\n", r.Consumer, r.Input, r.Producer, out, via, r.Range.Filename, r.Range.Start.Line)
			}
		}
		d, err := s.Deployment(nil)
		require.NoError(t, err)
		d.UseKEK(specKEK)
		p, err := graph.NewPlan(context.Background(), d, mem.New())
		require.NoError(t, err, spec.Format(s.Diagnostics(err)))
		// The steps by ID: their topological order follows the blocks'.
		b.WriteString("plan:\n")
		steps := slices.SortedFunc(slices.Values(p.Steps), func(a, b graph.Step) int { return strings.Compare(a.ID, b.ID) })
		for _, st := range steps {
			fmt.Fprintf(&b, "  %s %s: %s; waits for [%s]\n", st.Action, st.ID, st.Reason, strings.Join(st.WaitsFor, " "))
		}
		return b.String()
	}
	got := describe(files)
	reversed := []spec.File{files[1], files[0]}
	require.Equal(t, got, describe(reversed), "the file order changes nothing")
	golden := "testdata/order.golden"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test ./spec -run GoldenReferenceOrder -update to create it")
	require.Equal(t, string(want), got)
}
