package progress_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/progress"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/store/mem"
)

// The display fed by a real Apply, with its redraw goroutine: every
// node-role that runs has a start and a finish line, failures on several
// nodes are each reported, nothing is said of waiting node-roles, and
// Close leaves no goroutine drawing.
func TestApplyThroughDisplay(t *testing.T) {
	ctx := context.Background()
	var nodes []*provider.Node
	for i := 1; i <= 6; i++ {
		n := fmt.Sprintf("web-%d", i)
		nodes = append(nodes, &provider.Node{ID: n, Name: n})
	}
	type out struct{ OK bool }
	d := graph.NewDeployment("web")
	d.Bind(d.Pool("web", nodes...),
		role.Of(role.Func(role.Meta{Name: "serve", Version: "1"}, func(ctx context.Context, rc *role.Context, _ struct{}) (out, error) {
			time.Sleep(20 * time.Millisecond)
			if rc.Node().Name == "web-5" || rc.Node().Name == "web-6" {
				return out{}, errors.New("port 80 in use on " + rc.Node().Name)
			}
			return out{OK: true}, nil
		})))
	d.Bind(nil, role.Of(role.Func(role.Meta{Name: "check", Version: "1", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, in struct{ All role.All[out] }) (struct{}, error) {
			return struct{}{}, nil
		})))
	st := mem.New()
	for _, mode := range []progress.Mode{progress.Lines, progress.Live} {
		plan, err := graph.NewPlan(ctx, d, st)
		require.NoError(t, err)
		var buf safeBuffer
		show := progress.New(&buf, progress.Options{Mode: mode, Redraw: 5 * time.Millisecond, Width: 100, Height: 30})
		_, err = graph.Apply(ctx, plan, graph.Options{Parallelism: 3, Events: show})
		require.Error(t, err)
		require.NoError(t, show.Close())
		text := buf.String()
		time.Sleep(20 * time.Millisecond)
		require.Equal(t, text, buf.String(), "nothing is drawn after Close")
		require.NotContains(t, text, "pending")
		if mode == progress.Lines {
			for i := 1; i <= 4; i++ {
				require.Regexp(t, regexp.MustCompile(fmt.Sprintf(`(?m)^\[ +\d+\.\ds\] start   serve@web-%d: (new|last run failed.*)$`, i)), text)
			}
			require.Regexp(t, `(?m)^\[ +\d+\.\ds\] FAILED  serve@web-5 after 1 attempt in \d+\.\ds: port 80 in use on web-5$`, text)
			require.Regexp(t, `(?m)^\[ +\d+\.\ds\] blocked check: blocked by serve@web-[56]$`, text)
			require.Regexp(t, `(?m)^\[ +\d+\.\ds\] 7 of 7 done \((4 succeeded, )?2 failed, 1 blocked(, 4 unchanged)?\); slowest serve@web-\d \d+\.\ds\n$`, text)
			continue
		}
		last := text[strings.LastIndex(text, "\x1b[J")+len("\x1b[J"):]
		require.Contains(t, last, "web: finished ")
		require.Contains(t, last, "  FAILED    serve on web-5, web-6: port 80 in use on <node>\n")
		require.Contains(t, last, "  blocked   check: blocked by serve@web-")
	}
}

// safeBuffer is a bytes.Buffer the redraw goroutine and the test share.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
