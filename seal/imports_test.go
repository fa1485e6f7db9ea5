package seal_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The seal package is for every part of mason that keeps secrets, the
// graph's journal included: it must link no store backend, etcd, grpc or
// hcl, only the store contract.
func TestSealLinksOnlyTheStoreContract(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/masonops/mason/seal").CombinedOutput()
	require.NoError(t, err, string(out))
	require.ElementsMatch(t, []string{"github.com/masonops/mason/store", "github.com/masonops/mason/seal"}, strings.Fields(string(out)))
}
