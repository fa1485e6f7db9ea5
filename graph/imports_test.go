package graph_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsStayLight: a program that imports role, attr and graph with
// the bbolt store links no etcd, grpc or HCL package — those belong to
// store/etcd, spec and cli, which such a program need not import.
func TestImportsStayLight(t *testing.T) {
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command lists the packages a program links")
	pkgs := []string{
		"github.com/masonops/mason/role",
		"github.com/masonops/mason/attr",
		"github.com/masonops/mason/graph",
		"github.com/masonops/mason/store/bolt",
	}
	out, err := exec.Command(goTool, append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)...).CombinedOutput()
	require.NoError(t, err, string(out))
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "go.etcd.io/bbolt", "the list is of what these packages link")
	for _, d := range deps {
		for _, heavy := range []string{"go.etcd.io/etcd/", "google.golang.org/grpc", "github.com/hashicorp/hcl/"} {
			require.False(t, strings.HasPrefix(d, heavy), "role, attr, graph and store/bolt link %s (through %s); keep etcd, grpc and hcl out of them", d, heavy)
		}
	}
	t.Logf("role, attr, graph and store/bolt link %d packages outside the standard library", len(deps))
}
