package lab

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// needLab skips (outside CI) or fails (in CI) when labs cannot run here.
func needLab(t testing.TB) {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("lab tests need root and ip/nsenter/iptables/mount: %v", err)
		}
		t.Fatal(err)
	}
}

// uniqueName is a lab name unique to this test run.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

// openLab opens a fresh lab in a temporary directory and tears it down when
// the test ends, even on failure.
func openLab(t testing.TB, opts Options) *Lab {
	t.Helper()
	needLab(t)
	if opts.Name == "" {
		opts.Name = uniqueName("t")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return l
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
