package mason_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The root package is the library's front door: documentation only.
// Importing it must not link anything (the command line is package cli,
// which links the HCL loader and the etcd client).
func TestRootLinksNothing(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/masonops/mason").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, []string{"github.com/masonops/mason"}, strings.Fields(string(out)))
}
