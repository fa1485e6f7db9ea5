package spec_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/spec"
	"github.com/masonops/mason/store/mem"
)

func loadFile(t *testing.T, path string, opts spec.Options) *spec.Spec {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	s, diags := spec.Load(testRegistry(), []spec.File{{Name: path, Src: src}}, opts)
	require.False(t, diags.HasErrors(), spec.Format(diags))
	return s
}

func TestLoadGood(t *testing.T) {
	s := loadFile(t, "testdata/good.hcl", spec.Options{})
	require.Equal(t, "demo", s.Name)
	require.Equal(t, []string{"members-1", "members-2", "members-3"}, s.Pools[0].Nodes)
	require.Equal(t, "10.78.0.11", s.Provider.Settings["first"])
	d, err := s.Deployment(nil)
	require.NoError(t, err)
	d.UseKEK(specKEK)
	p, err := graph.NewPlan(context.Background(), d, mem.New())
	require.NoError(t, err, spec.Format(s.Diagnostics(err)))
	t.Log(p)
}
