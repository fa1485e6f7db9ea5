package claim_test

import (
	"os"
	"testing"

	"github.com/masonops/mason/internal/childtest"
)

// TestMain runs the test binary as one of the controller processes the
// failover tests start and kill, when their environment variable is set.
func TestMain(m *testing.M) {
	childtest.Dispatch(map[string]func(childtest.T){workerEnv: workerProcess, childEnv: claimant})
	os.Exit(m.Run())
}
