package ansible

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/lab"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/bolt"
)

// needAnsible skips (outside CI) or fails (in CI) without labs or
// ansible-playbook.
func needAnsible(t *testing.T) {
	t.Helper()
	err := lab.Check()
	if err == nil {
		if _, e := exec.LookPath("ansible-playbook"); e != nil {
			err = fmt.Errorf("ansible-playbook missing: install Debian package ansible-core: %w", e)
		}
	}
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("ansible tests run ansible-playbook against lab nodes: %v", err)
		}
		t.Fatal(err)
	}
}

// labNode makes one lab node, torn down with its lab when the test ends.
func labNode(t *testing.T, names ...string) []*provider.Node {
	t.Helper()
	needAnsible(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Open(ctx, lab.Options{Name: fmt.Sprintf("ansible-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9), Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	var nodes []*provider.Node
	for _, name := range names {
		n, err := l.Provider().Create(ctx, provider.NodeSpec{ID: name})
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	return nodes
}

func ctxT(t *testing.T) context.Context {
	// Generous: each ansible-playbook run costs seconds of CPU, and a
	// shared 2-core machine can make that minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func nodeFile(t *testing.T, n *provider.Node, path string) string {
	t.Helper()
	b, err := n.Transport.Get(context.Background(), path)
	require.NoError(t, err)
	return string(b)
}

type greetIn struct {
	Greeting   string              `attr:"greet.greeting"`
	Port       int                 `attr:"greet.port" default:"8080"`
	Peers      []string            `attr:"greet.peers"`
	Limits     map[string]int      `attr:"greet.limits"`
	Literal    string              `attr:"greet.literal"`
	DBPassword attr.Secret[string] `attr:"greet.db_password"`
}

type peerCount struct {
	Stdout string `json:"stdout"`
	RC     int    `json:"rc"`
}

type greetOut struct {
	URL       string `attr:"greet.url"`
	NextPort  int
	Tags      []string
	PeerCount peerCount
	Missing   string `ansible:"not_set,optional"`
	Stats
}

const secret = "s3cr3t-Pa55-7f1e9b"

func greetInput() greetIn {
	return greetIn{
		Greeting:   "hello",
		Port:       8080,
		Peers:      []string{"a", "b", "c"},
		Limits:     map[string]int{"cpu": 2, "memory_mib": 512},
		Literal:    "{{ not templated }}",
		DBPassword: attr.Conceal(secret),
	}
}

func TestVariablesInOutputsOut(t *testing.T) {
	ctx := ctxT(t)
	n := labNode(t, "web-1")[0]
	pb := Playbook[greetIn, greetOut]{Dir: "testdata/greet"}
	rc := role.NewContext(role.ContextOptions{Role: pb.Meta().Name, Node: n})

	out, err := pb.Run(ctx, rc, greetInput())
	require.NoError(t, err)
	require.Equal(t, "http://"+n.InterfaceAddr.String()+":8080/", out.URL)
	require.Equal(t, 8081, out.NextPort, "a number comes back as a number")
	require.Equal(t, []string{"A", "B", "C"}, out.Tags)
	require.Equal(t, peerCount{Stdout: "3", RC: 0}, out.PeerCount, "a registered result decodes into a struct")
	require.Empty(t, out.Missing)
	require.Equal(t, "hello from web-1\nport=8080\npeers=a,b,c\nlimits=2/512\nliteral={{ not templated }}\n",
		nodeFile(t, n, "/var/lib/greet/greeting.txt"), "typed variables reach the template; values are not templated")
	require.Equal(t, secret, nodeFile(t, n, "/var/lib/greet/password"), "the secret reaches the playbook")
	require.Equal(t, 3, out.Changed)
	require.Equal(t, []string{"greeting directory", "write the greeting", "write the password"}, out.ChangedTasks)
	require.Zero(t, out.Failed)

	again, err := pb.Run(ctx, rc, greetInput())
	require.NoError(t, err)
	require.Zero(t, again.Changed, "a converged playbook changes nothing: %s", again.Stats)
	require.Empty(t, again.ChangedTasks)
	require.Equal(t, out.URL, again.URL)

	t.Run("a role directory", func(t *testing.T) {
		type motdIn struct {
			Message string `attr:"motd.message"`
		}
		type motdOut struct{ MotdPath string }
		r := Playbook[motdIn, motdOut]{Dir: "testdata/motd-role"}
		require.Equal(t, "ansible-motd-role", r.Meta().Name)
		out, err := r.Run(ctx, rc, motdIn{Message: "maintenance at 22:00"})
		require.NoError(t, err)
		require.Equal(t, "/var/lib/motd-role/motd", out.MotdPath)
		require.Equal(t, "maintenance at 22:00\n", nodeFile(t, n, out.MotdPath))
	})

	t.Run("a missing output is an error naming the field", func(t *testing.T) {
		type strictOut struct{ Nowhere string }
		r := Playbook[greetIn, strictOut]{Dir: "testdata/greet"}
		_, err := r.Run(ctx, rc, greetInput())
		require.ErrorContains(t, err, `output Nowhere: the playbook set no variable "nowhere"`)
	})

	t.Run("bad input", func(t *testing.T) {
		_, err := Playbook[greetIn, greetOut]{Dir: "testdata/nowhere"}.Run(ctx, rc, greetInput())
		require.ErrorContains(t, err, "testdata/nowhere")
		_, err = Playbook[greetIn, greetOut]{Dir: "testdata/greet", File: "other.yml"}.Run(ctx, rc, greetInput())
		require.ErrorContains(t, err, "other.yml")
	})
}

func TestFailingTaskIsTheRolesFailure(t *testing.T) {
	ctx := ctxT(t)
	n := labNode(t, "db-1")[0]
	var logs bytes.Buffer
	pb := Playbook[greetIn, struct{}]{Dir: "testdata/fail"}
	rc := role.NewContext(role.ContextOptions{Role: pb.Meta().Name, Node: n, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	_, err := pb.Run(ctx, rc, greetInput())
	var te *TaskError
	require.True(t, errors.As(err, &te), "got %v", err)
	require.Equal(t, "check the license", te.Task)
	require.Equal(t, "db-1", te.Node)
	require.Equal(t, "ansible-fail", te.Role)
	require.Equal(t, "exit status 3", te.Msg)
	require.Equal(t, "license key [redacted] was rejected", te.Detail)
	require.Contains(t, err.Error(), `task "check the license" failed on db-1: exit status 3`)
	require.NotContains(t, err.Error()+logs.String(), secret)
	require.Contains(t, logs.String(), "check the license")
}

// The secret reaches the playbook (which writes it where it is told to)
// and nowhere else: not ansible-playbook's command line or environment,
// not the logs, not the journal, not a file left on the controller or the
// node.
func TestSecretsStayHidden(t *testing.T) {
	ctx := ctxT(t)
	n := labNode(t, "vault-1")[0]
	work := t.TempDir()
	// A wrapper records how ansible-playbook was started.
	record := filepath.Join(work, "started")
	wrapper := filepath.Join(work, "ansible-playbook")
	real, err := exec.LookPath("ansible-playbook")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\n{ echo \"$0 $*\"; env; ls -l /proc/$$/fd; } >>%s\nexec %s \"$@\"\n", record, real)), 0o755))

	var logs bytes.Buffer
	st, err := bolt.Open(filepath.Join(work, "mason.state"), nil)
	require.NoError(t, err)
	defer st.Close()
	d := graph.NewDeployment("vault")
	d.UseLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	pool := d.Pool("db", n)
	d.Bind(pool, role.Of(Playbook[greetIn, greetOut]{Dir: "testdata/greet", Command: wrapper}))
	graph.Set(d, attr.New[string]("greet.greeting"), "hi")
	graph.Set(d, attr.New[[]string]("greet.peers"), []string{"x"})
	graph.Set(d, attr.New[map[string]int]("greet.limits"), map[string]int{"cpu": 1, "memory_mib": 64})
	graph.Set(d, attr.New[string]("greet.literal"), "plain")
	graph.Set(d, attr.New[attr.Secret[string]]("greet.db_password"), attr.Conceal(secret))
	d.UseKEK(testKEK(t)) // the journal keys the password's digest
	plan, err := graph.NewPlan(ctx, d, st)
	require.NoError(t, err)
	res, err := graph.Apply(ctx, plan, graph.Options{Events: graph.JSONLines(&logs)})
	require.NoError(t, err)
	require.Equal(t, 1, res.Count(graph.StateSucceeded))
	require.Equal(t, secret, nodeFile(t, n, "/var/lib/greet/password"), "the playbook got the secret")

	// And a failing task that prints the secret.
	fail := Playbook[greetIn, struct{}]{Dir: "testdata/fail", Command: wrapper}
	_, ferr := fail.Run(ctx, role.NewContext(role.ContextOptions{Role: "fail", Node: n, Logger: slog.New(slog.NewTextHandler(&logs, nil))}), greetInput())
	require.Error(t, ferr)

	started, err := os.ReadFile(record)
	require.NoError(t, err)
	require.Contains(t, string(started), "MASON_ANSIBLE_VARS_FD=3", "the wrapper saw the real start")
	require.NotContains(t, string(started), secret, "command line and environment")
	require.NotContains(t, logs.String(), secret, "logs and events")
	require.Contains(t, logs.String(), "write the password", "the logs show the tasks")
	require.NotContains(t, ferr.Error(), secret)
	require.NoError(t, st.Close())
	journal, err := os.ReadFile(filepath.Join(work, "mason.state"))
	require.NoError(t, err)
	require.NotContains(t, string(journal), secret, "journal")

	// Nothing left on the controller: every private directory the two
	// runs used (named in the environment the wrapper recorded) is gone.
	// Only this test's own directories are checked: other processes on
	// the machine may hold theirs.
	used := regexp.MustCompile(`ANSIBLE_LOCAL_TEMP=(\S+)/local`).FindAllStringSubmatch(string(started), -1)
	require.Len(t, used, 2, "both runs recorded their private directory")
	for _, m := range used {
		require.Contains(t, m[1], "mason-ansible-")
		_, err := os.Stat(m[1])
		require.True(t, os.IsNotExist(err), "private directory %s is removed (%v)", m[1], err)
	}
	// Nothing on the node but the file the playbook wrote on purpose
	// (/root and /home are the host's in a lab node: Ansible's remote temp
	// directory would be there).
	out, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c",
		"grep -rlsF -e '" + secret + "' /tmp /var/tmp /var/lib /root/.ansible /run /etc 2>/dev/null; true"}})
	require.NoError(t, err)
	require.Equal(t, "/var/lib/greet/password\n", string(out.Stdout), "files holding the secret on the node")
}

// A playbook in a deployment next to native roles, wired both ways: a
// native role's output is the playbook's variable, the playbook's output
// is a native role's input. Editing the playbook re-runs it and nothing
// else.
func TestPlaybookEditRerunsItAndNothingElse(t *testing.T) {
	ctx := ctxT(t)
	nodes := labNode(t, "app-1", "app-2")
	dir := filepath.Join(t.TempDir(), "greet")
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/greet")))
	st, err := bolt.Open(filepath.Join(t.TempDir(), "mason.state"), nil)
	require.NoError(t, err)
	defer st.Close()

	type greetingOut struct {
		Greeting string `attr:"greet.greeting"`
	}
	source := role.Func(role.Meta{Name: "greeting"}, func(ctx context.Context, rc *role.Context, _ struct{}) (greetingOut, error) {
		return greetingOut{Greeting: "hello " + rc.Node().Name}, nil
	})
	type probeIn struct {
		URL string `attr:"greet.url"`
	}
	type probeOut struct{ Probed string }
	probe := role.Func(role.Meta{Name: "probe"}, func(ctx context.Context, rc *role.Context, in probeIn) (probeOut, error) {
		return probeOut{Probed: in.URL}, nil
	})
	kek := testKEK(t)
	deployment := func() *graph.Deployment {
		d := graph.NewDeployment("app")
		d.UseKEK(kek)
		d.Bind(d.Pool("app", nodes...), role.Of(source), role.Of(Playbook[greetIn, greetOut]{Dir: dir}), role.Of(probe))
		graph.Set(d, attr.New[[]string]("greet.peers"), []string{"x", "y"})
		graph.Set(d, attr.New[map[string]int]("greet.limits"), map[string]int{"cpu": 1, "memory_mib": 64})
		graph.Set(d, attr.New[string]("greet.literal"), "plain")
		graph.Set(d, attr.New[attr.Secret[string]]("greet.db_password"), attr.Conceal(secret))
		return d
	}
	actions := func(p *graph.Plan) map[string]string {
		m := map[string]string{}
		for _, s := range p.Steps {
			if s.Action != graph.ActionSkip {
				m[s.ID] = s.Reason
			}
		}
		return m
	}

	plan, err := graph.NewPlan(ctx, deployment(), st)
	require.NoError(t, err)
	res, err := graph.Apply(ctx, plan, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 6, res.Count(graph.StateSucceeded))
	require.Equal(t, "hello app-2 from app-2\n", strings.SplitAfter(nodeFile(t, nodes[1], "/var/lib/greet/greeting.txt"), "\n")[0], "a native output is the playbook's variable")

	plan, err = graph.NewPlan(ctx, deployment(), st)
	require.NoError(t, err)
	require.Empty(t, actions(plan), "converged")

	tmpl := filepath.Join(dir, "templates", "greeting.txt.j2")
	b, err := os.ReadFile(tmpl)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tmpl, append(b, []byte("edited=yes\n")...), 0o644))
	plan, err = graph.NewPlan(ctx, deployment(), st)
	require.NoError(t, err)
	got := actions(plan)
	require.Len(t, got, 4, "the playbook on both nodes, and its consumers pending its output: %v", got)
	for _, n := range []string{"app-1", "app-2"} {
		require.Contains(t, got["ansible-greet@"+n], "version changed")
	}
	res, err = graph.Apply(ctx, plan, graph.Options{})
	require.NoError(t, err)
	require.Equal(t, 2, res.Count(graph.StateSucceeded), "only the playbook ran")
	for _, n := range []string{"app-1", "app-2"} {
		o, ok := res.Outcome("probe@" + n)
		require.True(t, ok)
		require.Equal(t, graph.StateSkipped, o.State, "probe@%s: its input (the URL) did not change", n)
	}
	require.Contains(t, nodeFile(t, nodes[0], "/var/lib/greet/greeting.txt"), "edited=yes\n")
}

// testLogger sends a role's logs, debug lines included, to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// testKEK is a key-encryption key for deployments whose inputs hold
// secrets: the journal keys their digests (graph.Deployment.UseKEK).
func testKEK(t *testing.T) *seal.KEK {
	k, err := seal.Generate()
	require.NoError(t, err)
	return k
}
