package graph_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/childtest"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
)

type RmPeerOut struct{ URL string }
type RmMemberIn struct {
	Self  role.Same[RmPeerOut]
	Peers role.All[RmPeerOut]
}
type RmMemberOut struct {
	Name    string
	Cluster int
}
type RmVerifyIn struct{ Members role.All[RmMemberOut] }
type RmVerifyOut struct{ N int }

// shrinkWorld is a small cluster whose roles log what they do: a peer
// URL and a member on every node (both undoable), a verify over all
// members, and a node deleter.
type shrinkWorld struct {
	mu       sync.Mutex
	log      []string
	failUndo map[string]error // by node-role ID
	block    func(what string)
	deleted  []string
}

func (w *shrinkWorld) note(s string) {
	w.mu.Lock()
	w.log = append(w.log, s)
	w.mu.Unlock()
	if w.block != nil {
		w.block(s)
	}
}

func (w *shrinkWorld) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log...)
}

func (w *shrinkWorld) undoErr(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failUndo[id]
}

func (w *shrinkWorld) DeleteNode(ctx context.Context, name string) error {
	w.note("delete " + name)
	w.mu.Lock()
	w.deleted = append(w.deleted, name)
	w.mu.Unlock()
	return nil
}

func (w *shrinkWorld) deployment(names ...string) *graph.Deployment {
	peer := role.Func(role.Meta{Name: "peer", Version: "1"}, func(ctx context.Context, rc *role.Context, _ struct{}) (RmPeerOut, error) {
		w.note("run peer@" + rc.Node().Name)
		return RmPeerOut{URL: "https://" + rc.Node().Name}, nil
	}).WithUndo(func(ctx context.Context, rc *role.Context, last RmPeerOut) error {
		w.note("undo peer@" + rc.Node().Name + " " + last.URL)
		return w.undoErr("peer@" + rc.Node().Name)
	})
	member := role.Func(role.Meta{Name: "member", Version: "1"}, func(ctx context.Context, rc *role.Context, in RmMemberIn) (RmMemberOut, error) {
		w.note("run member@" + rc.Node().Name)
		return RmMemberOut{Name: rc.Node().Name, Cluster: len(in.Peers)}, nil
	}).WithUndo(func(ctx context.Context, rc *role.Context, last RmMemberOut) error {
		transport := "without transport"
		if rc.Node().Transport != nil {
			transport = "on the node"
		}
		w.note(fmt.Sprintf("undo member@%s %s of %d %s", rc.Node().Name, last.Name, last.Cluster, transport))
		return w.undoErr("member@" + rc.Node().Name)
	})
	verify := role.Func(role.Meta{Name: "verify", Version: "1", Scope: role.ScopeService}, func(ctx context.Context, rc *role.Context, in RmVerifyIn) (RmVerifyOut, error) {
		w.note(fmt.Sprintf("run verify %d", len(in.Members)))
		return RmVerifyOut{N: len(in.Members)}, nil
	})
	d := graph.NewDeployment("shrink")
	d.Bind(d.Pool("web", nodes(names...)...), role.Of(peer), role.Of(member))
	d.Bind(nil, role.Of(verify))
	d.DeleteNodesWith(w)
	return d
}

// leavingNode is a node that still exists: it has a transport.
func leavingNode(name string) *provider.Node {
	return &provider.Node{Name: name, Transport: noTransport{}}
}

type noTransport struct{}

func (noTransport) Run(context.Context, provider.Command) (provider.Result, error) {
	return provider.Result{}, errors.New("not used")
}
func (noTransport) Put(context.Context, string, io.Reader, provider.FileOptions) error {
	return errors.New("not used")
}
func (noTransport) Get(context.Context, string) ([]byte, error) { return nil, errors.New("not used") }

func journalIDs(t *testing.T, st store.Store, dep string) []string {
	t.Helper()
	ents, err := graph.ReadJournal(context.Background(), st, dep)
	require.NoError(t, err)
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestRemoveNode(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	w := &shrinkWorld{}
	_, _, err := planApply(t, w.deployment("web-1", "web-2", "web-3", "web-4"), st, graph.Options{})
	require.NoError(t, err)
	w.log = nil

	d := w.deployment("web-1", "web-2", "web-3")
	d.Leaving(leavingNode("web-4"))
	p, err := graph.NewPlan(ctx, d, st)
	require.NoError(t, err)
	require.False(t, p.Converged())
	require.Empty(t, p.Orphans)
	require.Len(t, p.Removals, 1)
	rm := p.Removals[0]
	require.Equal(t, "web-4", rm.Node)
	require.Equal(t, graph.ReasonNodeLeft, rm.Why)
	require.Equal(t, "node web-4 left the deployment", rm.Reason)
	require.False(t, rm.Gone)
	var steps []string
	for _, s := range rm.Steps {
		require.True(t, s.Undo, s.ID)
		steps = append(steps, s.ID+" "+s.Reason)
	}
	// Reverse dependency order: the member before the peer URL it uses.
	require.Equal(t, []string{
		"member@web-4 undo: node web-4 left the deployment",
		"peer@web-4 undo: node web-4 left the deployment",
	}, steps)
	for _, id := range []string{"member@web-1", "member@web-2", "member@web-3"} {
		s, _ := p.Step(id)
		require.Equal(t, graph.ActionRun, s.Action, id)
		require.Equal(t, "input Peers changed: -web-4", s.Reason, id)
		require.Equal(t, graph.ReasonInputChanged, s.Why)
	}
	s, _ := p.Step("verify")
	require.Equal(t, "input Members changed: -web-4", s.Reason)
	text := p.String()
	require.Contains(t, text, ", 1 node to remove\n")
	require.Contains(t, text, "  remove         node web-4: node web-4 left the deployment\n")
	require.Contains(t, text, "  undo           member@web-4: node web-4 left the deployment\n")

	var events eventLog
	res, err := graph.Apply(ctx, p, graph.Options{Events: &events})
	require.NoError(t, err)
	require.Equal(t, []graph.Removed{{Node: "web-4", Done: true, Undone: []string{"member@web-4", "peer@web-4"}}}, res.Removals)
	log := w.lines()
	// Undone on the node, in order, then deleted, then the peers re-run.
	require.Equal(t, []string{
		"undo member@web-4 web-4 of 4 on the node",
		"undo peer@web-4 https://web-4",
		"delete web-4",
	}, log[:3])
	require.ElementsMatch(t, []string{"run member@web-1", "run member@web-2", "run member@web-3", "run verify 3"}, log[3:])
	var undoEvents []string
	for _, e := range events.events() {
		if e.Node == "web-4" {
			undoEvents = append(undoEvents, e.ID+" "+e.State.String()+" "+e.Why.String())
		}
	}
	require.Equal(t, []string{
		"member@web-4 running node-left", "member@web-4 succeeded node-left",
		"peer@web-4 running node-left", "peer@web-4 succeeded node-left",
	}, undoEvents)
	for _, id := range journalIDs(t, st, "shrink") {
		require.NotContains(t, id, "web-4", "the journal forgot the node")
	}

	// Removed and converged: nothing left to do.
	d = w.deployment("web-1", "web-2", "web-3")
	p, err = graph.NewPlan(ctx, d, st)
	require.NoError(t, err)
	require.True(t, p.Converged(), p.String())
	require.Empty(t, p.Removals)
}

func TestRemoveNodeUndoFails(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	w := &shrinkWorld{failUndo: map[string]error{"member@web-3": errors.New("member-remove: cluster unhealthy")}}
	_, _, err := planApply(t, w.deployment("web-1", "web-2", "web-3"), st, graph.Options{})
	require.NoError(t, err)
	w.log = nil

	// web-3 is gone already: the deployment deletes nodes but does not
	// name it as leaving.
	p, res, err := planApply(t, w.deployment("web-1", "web-2"), st, graph.Options{})
	require.True(t, p.Removals[0].Gone)
	require.Contains(t, p.String(), "(it is gone: undos that need it will fail)")
	var re *graph.RemovalError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "web-3", re.Node)
	require.Equal(t, "member@web-3", re.ID)
	require.Contains(t, err.Error(), "undo of member@web-3 failed: member-remove: cluster unhealthy; the node was not deleted and nothing else ran")
	require.Equal(t, []string{"undo member@web-3 web-3 of 3 without transport"}, w.lines(), "no deletion, nothing else ran")
	require.False(t, res.Removals[0].Done)
	require.Equal(t, 0, res.Count(graph.StateSucceeded))
	ents, err := graph.ReadJournal(ctx, st, "shrink")
	require.NoError(t, err)
	var failed graph.Entry
	for _, e := range ents {
		if e.ID == "member@web-3" {
			failed = e
		}
	}
	require.Equal(t, graph.StateFailed, failed.State)
	require.Equal(t, "undo failed: member-remove: cluster unhealthy", failed.Error)

	// The next plan says why it is still there.
	p, err = graph.NewPlan(ctx, w.deployment("web-1", "web-2"), st)
	require.NoError(t, err)
	require.Equal(t, "undo: node web-3 left the deployment; undo failed: member-remove: cluster unhealthy", p.Removals[0].Steps[0].Reason)

	// Forced: the undos still run, their failure is reported, the node is
	// deleted and forgotten, and the rest runs.
	w.log = nil
	p, res, err = planApply(t, w.deployment("web-1", "web-2"), st, graph.Options{}, graph.ForceRemove("web-3"))
	require.NoError(t, err)
	require.Equal(t, graph.ReasonForcedRemoval, p.Removals[0].Why)
	require.Equal(t, "node web-3 left the deployment; removed by force", p.Removals[0].Reason)
	require.True(t, res.Removals[0].Done)
	require.ErrorContains(t, res.Removals[0].Err, "member-remove: cluster unhealthy")
	require.Equal(t, []string{"peer@web-3"}, res.Removals[0].Undone)
	log := w.lines()
	require.Equal(t, []string{"undo member@web-3 web-3 of 3 without transport", "undo peer@web-3 https://web-3", "delete web-3"}, log[:3])
	require.ElementsMatch(t, []string{"run member@web-1", "run member@web-2", "run verify 2"}, log[3:])
	for _, id := range journalIDs(t, st, "shrink") {
		require.NotContains(t, id, "web-3")
	}

	// Forcing a node that did not leave is a mistake.
	_, err = graph.NewPlan(ctx, w.deployment("web-1", "web-2"), st, graph.ForceRemove("web-2", "web-9"))
	require.ErrorContains(t, err, `ForceRemove("web-2"): node web-2 has not left deployment shrink: it is still in the deployment`)
	require.ErrorContains(t, err, `ForceRemove("web-9"): node web-9 has not left deployment shrink: the journal knows no node-role on it`)
}

// A node that left without anything to undo (roles without Undo, or a
// node named Leaving that nothing ran on) is deleted and forgotten.
func TestRemoveNodeWithoutUndo(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	f := newFakes()
	w := &shrinkWorld{}
	build := func(names ...string) *graph.Deployment {
		d := graph.NewDeployment("plain")
		d.Bind(d.Pool("p", nodes(names...)...), f.roleA(role.Meta{}))
		d.DeleteNodesWith(w)
		return d
	}
	_, _, err := planApply(t, build("n1", "n2"), st, graph.Options{})
	require.NoError(t, err)
	d := build("n1")
	d.Leaving(leavingNode("n2"), leavingNode("n3")) // n3: created, nothing ran on it
	p, res, err := planApply(t, d, st, graph.Options{})
	require.NoError(t, err)
	require.Len(t, p.Removals, 2)
	require.Equal(t, "forget: the role has no Undo", p.Removals[0].Steps[0].Reason)
	require.Empty(t, p.Removals[1].Steps)
	require.True(t, res.Removals[0].Done && res.Removals[1].Done)
	require.Equal(t, []string{"n2", "n3"}, w.deleted)
	require.Equal(t, []string{"a@n1"}, journalIDs(t, st, "plain"))

	d = build("n1")
	d.Leaving(leavingNode("n1"))
	_, err = graph.NewPlan(ctx, d, st)
	require.ErrorContains(t, err, `node "n1" is both in deployment plain and leaving it`)
}

const removeCrashEnv = "MASON_GRAPH_REMOVE_CRASH_DIR"

// removeCrashChild removes web-3 from a bolt state; at the step named
// by $MASON_GRAPH_REMOVE_CRASH_AT it blocks (after writing "blocked"),
// and the parent kills the process.
func removeCrashChild(t childtest.T) {
	dir := os.Getenv(removeCrashEnv)
	st, err := bolt.Open(filepath.Join(dir, "state.db"), nil)
	require.NoError(t, err)
	w := &shrinkWorld{block: func(what string) {
		if strings.HasPrefix(what, os.Getenv("MASON_GRAPH_REMOVE_CRASH_AT")) {
			_ = os.WriteFile(filepath.Join(dir, "blocked"), nil, 0o644)
			select {} // killed here
		}
	}}
	d := w.deployment("web-1", "web-2")
	d.Leaving(leavingNode("web-3"))
	p, err := graph.NewPlan(context.Background(), d, st)
	require.NoError(t, err)
	_, err = graph.Apply(context.Background(), p, graph.Options{})
	require.NoError(t, err)
}

// A process killed mid-removal — in an undo, or after every undo, before
// the node is deleted — leaves a removal the next plan resumes: no undo
// that finished runs again, the interrupted one does, the node is
// deleted, and only then do the peers run.
func TestRemoveNodeResumesAfterSIGKILL(t *testing.T) {
	for _, tc := range []struct {
		at        string
		undoAgain []string // undos the resumed removal runs
	}{
		{"undo peer@web-3", []string{"undo peer@web-3 https://web-3"}},
		{"delete web-3", nil},
	} {
		t.Run(tc.at, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			{
				st, err := bolt.Open(filepath.Join(dir, "state.db"), nil)
				require.NoError(t, err)
				_, _, err = planApply(t, (&shrinkWorld{}).deployment("web-1", "web-2", "web-3"), st, graph.Options{})
				require.NoError(t, err)
				require.NoError(t, st.Close())
			}
			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), removeCrashEnv+"="+dir, "MASON_GRAPH_REMOVE_CRASH_AT="+tc.at)
			var out strings.Builder
			child.Stdout, child.Stderr = &out, &out
			require.NoError(t, child.Start())
			deadline := time.Now().Add(time.Minute)
			for {
				if _, err := os.Stat(filepath.Join(dir, "blocked")); err == nil {
					break
				}
				require.True(t, time.Now().Before(deadline), "the child never reached %s: %s", tc.at, out.String())
				time.Sleep(10 * time.Millisecond)
			}
			require.NoError(t, child.Process.Signal(syscall.SIGKILL))
			_ = child.Wait()

			st, err := bolt.Open(filepath.Join(dir, "state.db"), nil)
			require.NoError(t, err)
			defer st.Close()
			w := &shrinkWorld{}
			d := w.deployment("web-1", "web-2")
			d.Leaving(leavingNode("web-3"))
			p, err := graph.NewPlan(ctx, d, st)
			require.NoError(t, err)
			require.Len(t, p.Removals, 1, "the removal is still known")
			require.False(t, p.Converged())
			var undos []string
			for _, s := range p.Removals[0].Steps {
				if s.Undo {
					undos = append(undos, s.ID+" "+s.Last.String())
				}
			}
			if tc.undoAgain != nil {
				require.Equal(t, []string{"peer@web-3 running"}, undos, "member@web-3 was undone before the crash")
			} else {
				require.Empty(t, undos)
			}
			_, err = graph.Apply(ctx, p, graph.Options{})
			require.NoError(t, err)
			log := w.lines()
			require.Equal(t, append(tc.undoAgain, "delete web-3"), log[:len(tc.undoAgain)+1])
			require.ElementsMatch(t, []string{"run member@web-1", "run member@web-2", "run verify 2"}, log[len(tc.undoAgain)+1:])

			p, err = graph.NewPlan(ctx, w.deployment("web-1", "web-2"), st)
			require.NoError(t, err)
			require.True(t, p.Converged(), p.String())
		})
	}
}

// With a Controller, a removal is claimed; one another controller did
// since the plan is not done again.
func TestRemoveNodeWithControllers(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	w := &shrinkWorld{}
	_, _, err := planApply(t, w.deployment("web-1", "web-2", "web-3"), st, graph.Options{})
	require.NoError(t, err)
	w.log = nil
	plan := func() *graph.Plan {
		d := w.deployment("web-1", "web-2")
		d.Leaving(leavingNode("web-3"))
		p, err := graph.NewPlan(ctx, d, st)
		require.NoError(t, err)
		return p
	}
	pa, pb := plan(), plan()
	ra, err := graph.Apply(ctx, pa, graph.Options{Controller: &graph.Controller{Name: "ctl-a"}})
	require.NoError(t, err)
	require.Equal(t, []string{"member@web-3", "peer@web-3"}, ra.Removals[0].Undone)
	rb, err := graph.Apply(ctx, pb, graph.Options{Controller: &graph.Controller{Name: "ctl-b"}})
	require.NoError(t, err)
	require.True(t, rb.Removals[0].Done)
	require.Empty(t, rb.Removals[0].Undone, "removed by ctl-a already")
	n := 0
	for _, l := range w.lines() {
		if strings.HasPrefix(l, "undo ") || strings.HasPrefix(l, "delete ") {
			n++
		}
	}
	require.Equal(t, 3, n, "two undos and one deletion in all: %v", w.lines())
}

type RmSecretOut struct{ Token attr.Secret[string] }

// An undo gets a secret output unsealed, and the records a removal
// writes (running, failed) keep it sealed.
func TestRemoveNodeKeepsSecretsSealed(t *testing.T) {
	ctx := context.Background()
	st := memStore(t)
	kek := testKEK(t)
	const secret = "s3cr3t-join-token-4711"
	var got []string
	build := func(names ...string) *graph.Deployment {
		r := role.Func(role.Meta{Name: "join"}, func(ctx context.Context, rc *role.Context, _ struct{}) (RmSecretOut, error) {
			return RmSecretOut{Token: attr.Conceal(secret)}, nil
		}).WithUndo(func(ctx context.Context, rc *role.Context, last RmSecretOut) error {
			got = append(got, last.Token.Reveal())
			return errors.New("swarm leave: no manager answers")
		})
		d := graph.NewDeployment("sealed")
		d.Bind(d.Pool("p", nodes(names...)...), role.Of(r))
		d.UseKEK(kek)
		return d
	}
	_, _, err := planApply(t, build("n1", "n2"), st, graph.Options{})
	require.NoError(t, err)
	_, _, err = planApply(t, build("n1"), st, graph.Options{})
	require.ErrorContains(t, err, "undo of join@n2 failed: swarm leave: no manager answers")
	require.Equal(t, []string{secret}, got, "the undo got the secret")
	ents, _, err := st.List(ctx, "")
	require.NoError(t, err)
	for _, e := range ents {
		require.NotContains(t, string(e.Value), secret, e.Key)
	}
}
