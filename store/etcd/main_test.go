package etcdstore_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/masonops/mason/store/etcd/etcdtest"
)

// TestMain skips the whole package, examples included, when there is no
// etcd server to test against and CI is unset. In CI a missing binary makes
// every test fail instead (etcdtest.Binary) and the examples print the
// error.
func TestMain(m *testing.M) {
	if _, err := os.Stat(etcdtest.BinaryPath()); err != nil && os.Getenv("CI") == "" {
		fmt.Printf("store/etcd: skipping all tests: etcd server binary %s not found (apt-get install etcd-server, or set MASON_ETCD); CI is unset\n", etcdtest.BinaryPath())
		os.Exit(0)
	}
	os.Exit(m.Run())
}
