package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A controller that uses a daemon links only the client: not the daemon
// server, the embedded services, bbolt, pki or the DNS server library.
func TestClientLinksNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/masonops/mason/netsvc/daemon/client").CombinedOutput()
	require.NoError(t, err, string(out))
	require.ElementsMatch(t, []string{
		"github.com/masonops/mason/netsvc",
		"github.com/masonops/mason/netsvc/daemon/internal/wire",
		"github.com/masonops/mason/netsvc/daemon/client",
	}, strings.Fields(string(out)))
}
