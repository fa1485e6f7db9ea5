package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store/etcd/etcdtest"
)

func TestOpenState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	var hosts []string
	for _, ep := range c.Endpoints() {
		hosts = append(hosts, strings.TrimPrefix(ep, "http://"))
	}
	for _, tc := range []struct {
		name, state, err string
	}{
		{name: "bolt path", state: filepath.Join(dir, "a.state")},
		{name: "bolt URL", state: "bolt://" + filepath.Join(dir, "b.state")},
		{name: "etcd", state: "etcd://" + strings.Join(hosts, ",") + "/cli-test"},
		{name: "unknown scheme", state: "s3://bucket/x", err: "unknown scheme"},
		{name: "no endpoint", state: "etcd:///prefix/", err: "names no etcd endpoint"},
		{name: "missing CA", state: "etcds://127.0.0.1:1/p/?ca=" + filepath.Join(dir, "nope.pem"), err: "reading etcd CA"},
		{name: "bolt in a missing directory", state: filepath.Join(dir, "no", "such", "dir", "x.state"), err: "does not exist: create it, or name another -state; nothing was changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := openState(ctx, tc.state, true, "test")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.NotContains(t, err.Error(), "ca=", "query parameters (file paths of keys) stay out of errors")
				return
			}
			require.NoError(t, err)
			defer st.Close()
			_, err = st.Put(ctx, "k", []byte("v"))
			require.NoError(t, err)
			e, err := st.Get(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, "v", string(e.Value))
		})
	}
	// The etcd store keeps its keys under the prefix.
	st, err := openState(ctx, "etcd://"+strings.Join(hosts, ",")+"/", true, "test")
	require.NoError(t, err)
	defer st.Close()
	entries, _, err := st.List(ctx, "cli-test/")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "cli-test/k", entries[0].Key)
}
