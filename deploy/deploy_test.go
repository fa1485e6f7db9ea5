package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/internal/memprovider"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
)

func specs(n int) []provider.NodeSpec {
	var out []provider.NodeSpec
	for i := 1; i <= n; i++ {
		out = append(out, provider.NodeSpec{ID: fmt.Sprintf("n%d", i), Name: fmt.Sprintf("n%d", i)})
	}
	return out
}

func openBolt(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestNewDeploymentIsRecordedAndStampsItsNodes(t *testing.T) {
	ctx := context.Background()
	drv := memprovider.New(10)
	p := provider.New(drv)
	st := openBolt(t, filepath.Join(t.TempDir(), "state.db"))

	// A plan (Read) of a new deployment writes nothing.
	d, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Provider: p, Nodes: specs(3)})
	require.NoError(t, err)
	_, recorded := d.Identity()
	require.False(t, recorded)
	ents, _, err := st.List(ctx, "")
	require.NoError(t, err)
	require.Empty(t, ents)
	require.Len(t, d.Missing(), 3)

	d, err = deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Provider: p, Nodes: specs(3), Purpose: deploy.Apply, Owner: "test"})
	require.NoError(t, err)
	id, recorded := d.Identity()
	require.True(t, recorded)
	require.Len(t, id.ID, 16)
	var names []string
	nodes, err := d.CreateNodes(ctx, func(n *provider.Node) { names = append(names, n.Name) })
	require.NoError(t, err)
	require.Len(t, nodes, 3)
	slices.Sort(names)
	require.Equal(t, []string{"n1", "n2", "n3"}, names)
	for _, n := range nodes {
		require.Equal(t, id.ID, n.Labels[deploy.IdentityLabel])
	}

	// The next run finds the same identity and creates nothing.
	again, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Provider: p, Nodes: specs(3), Purpose: deploy.Apply})
	require.NoError(t, err)
	id2, _ := again.Identity()
	require.Equal(t, id, id2)
	require.Empty(t, again.Missing())
	_, err = again.CreateNodes(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 3, drv.Creates())
}

// The state is lost (removed, emptied, or another one named) while the
// nodes live: refused, naming what was found and how to go on; nothing is
// written or created.
func TestLostStateIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	drv := memprovider.New(10)
	p := provider.New(drv)
	st := openBolt(t, filepath.Join(dir, "state.db"))
	d, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Provider: p, Nodes: specs(3), Purpose: deploy.Apply})
	require.NoError(t, err)
	_, err = d.CreateNodes(ctx, nil)
	require.NoError(t, err)

	other := openBolt(t, filepath.Join(dir, "other.db"))
	_, err = other.Put(ctx, "mason/deployments/db/identity", []byte(`{"name":"db","id":"0123456789abcdef"}`))
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		st      store.Store
		missing bool
		want    string
	}{
		{"missing", openBolt(t, filepath.Join(dir, "new.db")), true, "state file new.db did not exist"},
		{"empty", openBolt(t, filepath.Join(dir, "empty.db")), false, "state file empty.db is empty"},
		{"another deployment's", other, false, "state file other.db holds deployment db but not web"},
	} {
		for _, purpose := range []deploy.Purpose{deploy.Read, deploy.Apply} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, purpose), func(t *testing.T) {
				before, _, err := tc.st.List(ctx, "")
				require.NoError(t, err)
				where := "state file " + map[string]string{"missing": "new.db", "empty": "empty.db", "another deployment's": "other.db"}[tc.name]
				_, err = deploy.Open(ctx, deploy.Options{Name: "web", Store: tc.st, Where: where, Missing: tc.missing, Provider: p, Nodes: specs(3),
					Purpose: purpose, DestroyCommand: "prov destroy -yes"})
				var lost *deploy.LostStateError
				require.ErrorAs(t, err, &lost)
				require.Equal(t, []string{"n1", "n2", "n3"}, lost.Nodes)
				require.Contains(t, err.Error(), tc.want+", but provider mem still holds 3 nodes of deployment web (n1, n2, n3)")
				require.Contains(t, err.Error(), "Restore the state from a backup")
				require.Contains(t, err.Error(), "run prov destroy -yes to remove the nodes first")
				after, _, err := tc.st.List(ctx, "")
				require.NoError(t, err)
				require.Equal(t, before, after, "nothing written")
			})
		}
	}
	require.Equal(t, 3, drv.Creates())

	// Destroy is the way out: it works with the empty state.
	empty := openBolt(t, filepath.Join(dir, "empty2.db"))
	dd, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: empty, Provider: p, Nodes: specs(3), Purpose: deploy.Destroy})
	require.NoError(t, err)
	res, err := dd.Destroy(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"n1", "n2", "n3"}, res.Nodes)
	require.True(t, res.TornDown)
	require.Equal(t, 1, drv.Teardowns())
}

// Nodes stamped by another incarnation of the deployment than the state
// records are refused.
func TestNodesOfAnotherIncarnationAreRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	drv := memprovider.New(10)
	p := provider.New(drv)
	old := openBolt(t, filepath.Join(dir, "old.db"))
	_, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: old, Provider: p, Nodes: specs(2), Purpose: deploy.Apply})
	require.NoError(t, err) // a state recorded, then the nodes destroyed and made again under a new state:
	fresh := openBolt(t, filepath.Join(dir, "fresh.db"))
	d, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: fresh, Provider: p, Nodes: specs(2), Purpose: deploy.Apply})
	require.NoError(t, err)
	_, err = d.CreateNodes(ctx, nil)
	require.NoError(t, err)

	_, err = deploy.Open(ctx, deploy.Options{Name: "web", Store: old, Where: "state file old.db", Provider: p, Nodes: specs(2)})
	require.ErrorContains(t, err, "nodes n1, n2 of provider mem were created by another deployment web than the one state file old.db records")
}

func TestInputIsCheckedBeforeAnythingIsCreated(t *testing.T) {
	ctx := context.Background()
	drv := memprovider.New(5)
	p := provider.New(drv)
	st := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	for _, tc := range []struct {
		name  string
		o     deploy.Options
		wants string
	}{
		{"over capacity", deploy.Options{Name: "web", Nodes: specs(6)}, "deployment web wants 6 nodes, 6 of them new, and provider mem holds 0 nodes already; it can hold at most 5: nothing was created"},
		{"bad name", deploy.Options{Name: "we/b", Nodes: specs(1)}, `deployment name "we/b" is invalid`},
		{"bad node", deploy.Options{Name: "web", Nodes: []provider.NodeSpec{{ID: "N_1"}}}, `node ID "N_1" is invalid`},
		{"twice", deploy.Options{Name: "web", Nodes: append(specs(2), specs(1)...)}, `node ID "n1" is wanted twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Store, tc.o.Provider, tc.o.Purpose = st, p, deploy.Apply
			_, err := deploy.Open(ctx, tc.o)
			require.ErrorContains(t, err, tc.wants)
			ents, _, err := st.List(ctx, "")
			require.NoError(t, err)
			require.Empty(t, ents, "nothing recorded")
			require.Zero(t, drv.Creates())
		})
	}
}

// Two processes' worth of controllers start together on one state store
// (here: goroutines on one etcd-like shared store): each node is created
// once.
func TestConcurrentCreatesMakeEachNodeOnce(t *testing.T) {
	ctx := context.Background()
	drv := memprovider.New(50)
	p := provider.New(drv)
	st := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	ids := make([]string, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Provider: p, Nodes: specs(8), Purpose: deploy.Apply})
			if err != nil {
				errs[i] = err
				return
			}
			id, _ := d.Identity()
			ids[i] = id.ID
			_, errs[i] = d.CreateNodes(ctx, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 8, drv.Creates())
	for _, id := range ids {
		require.Equal(t, ids[0], id, "one identity")
	}
}

func TestCreateErrorsNameTheNode(t *testing.T) {
	ctx := context.Background()
	drv := memprovider.New(50)
	drv.FailOn = "n2"
	p := provider.New(drv)
	st := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	d, err := deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Provider: p, Nodes: specs(3), Purpose: deploy.Apply})
	require.NoError(t, err)
	nodes, err := d.CreateNodes(ctx, nil)
	var ne *deploy.NodeError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "n2", ne.Node)
	require.ErrorContains(t, err, "node n2: mem: create node n2: no address left in subnet")
	require.Len(t, nodes, 2)
}

// The key-encryption key: made for a new deployment only, then required
// and checked against the state before anything runs.
func TestKeyIsCheckedAgainstTheState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	drv := memprovider.New(10)
	p := provider.New(drv)
	st := openBolt(t, filepath.Join(dir, "state.db"))
	keyFile := filepath.Join(dir, "state.db.kek")
	open := func(purpose deploy.Purpose, ks deploy.KeySource) (*deploy.Deployment, error) {
		return deploy.Open(ctx, deploy.Options{Name: "web", Store: st, Where: "state file state.db", Provider: p, Nodes: specs(2), Purpose: purpose, Key: &ks})
	}
	ks := deploy.KeySource{File: keyFile, Env: "MASON_DEPLOY_TEST_KEK"}

	// A plan of a new deployment needs no key and makes none.
	d, err := open(deploy.Read, ks)
	require.NoError(t, err)
	require.Nil(t, d.KEK())
	_, err = os.Stat(keyFile)
	require.ErrorIs(t, err, os.ErrNotExist)

	// Its first apply makes one, mode 0600.
	d, err = open(deploy.Apply, ks)
	require.NoError(t, err)
	require.NotNil(t, d.KEK())
	fi, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	first := d.KEK().Fingerprint()
	_, err = d.CreateNodes(ctx, nil)
	require.NoError(t, err)

	again, err := open(deploy.Apply, ks)
	require.NoError(t, err)
	require.Equal(t, first, again.KEK().Fingerprint())

	// The key is lost: refused, no new key made, nothing written.
	saved, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NoError(t, os.Remove(keyFile))
	for _, purpose := range []deploy.Purpose{deploy.Read, deploy.Apply} {
		_, err = open(purpose, ks)
		require.ErrorContains(t, err, "deployment web in state file state.db exists, but its key-encryption key is missing (looked for key file "+keyFile+" or environment variable MASON_DEPLOY_TEST_KEK)")
		_, serr := os.Stat(keyFile)
		require.ErrorIs(t, serr, os.ErrNotExist)
	}

	// Another key (in the environment, which wins over the file) is refused.
	require.NoError(t, os.WriteFile(keyFile, saved, 0o600))
	t.Setenv("MASON_DEPLOY_TEST_KEK", strings.Repeat("ab", 32))
	for _, purpose := range []deploy.Purpose{deploy.Read, deploy.Apply} {
		_, err = open(purpose, ks)
		require.ErrorContains(t, err, "the key-encryption key from key file "+keyFile+" or environment variable MASON_DEPLOY_TEST_KEK is not the one deployment web in state file state.db was sealed with")
	}
	t.Setenv("MASON_DEPLOY_TEST_KEK", "")

	// A key file others can read is refused.
	require.NoError(t, os.Chmod(keyFile, 0o644))
	_, err = open(deploy.Apply, ks)
	require.ErrorContains(t, err, "has mode 0644")
	require.NoError(t, os.Chmod(keyFile, 0o600))

	// An explicit request makes a new key for a state that never had one.
	legacy := openBolt(t, filepath.Join(dir, "legacy.db"))
	_, err = legacy.Put(ctx, "mason/graph/web/nr/x@n1", []byte("{}"))
	require.NoError(t, err)
	lk := filepath.Join(dir, "legacy.kek")
	_, err = deploy.Open(ctx, deploy.Options{Name: "web", Store: legacy, Provider: provider.New(memprovider.New(10)), Purpose: deploy.Apply, Key: &deploy.KeySource{File: lk}})
	require.ErrorContains(t, err, "its key-encryption key is missing")
	d, err = deploy.Open(ctx, deploy.Options{Name: "web", Store: legacy, Provider: provider.New(memprovider.New(10)), Purpose: deploy.Apply, Key: &deploy.KeySource{File: lk, New: true}})
	require.NoError(t, err)
	require.NotNil(t, d.KEK())
}
