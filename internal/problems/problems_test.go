package problems

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-multierror"
	"github.com/stretchr/testify/require"
)

type nodeErr struct{ node string }

func (e *nodeErr) Error() string { return "disk full on " + e.node }

func TestFlattenKeepsContextAndTypes(t *testing.T) {
	var inner *multierror.Error
	inner = multierror.Append(inner, &nodeErr{"n1"})
	var outer *multierror.Error
	outer = multierror.Append(outer, fmt.Errorf("planning a@n1: %w", inner))
	outer = multierror.Append(outer, errors.Join(errors.New("x"), fmt.Errorf("wrapped: %w", &nodeErr{"n2"})))
	outer = multierror.Append(outer, fmt.Errorf("apply stopped: %w", errors.New("context canceled")))

	leaves := Flatten(fmt.Errorf("apply: %w", outer.ErrorOrNil()))
	var texts []string
	for _, l := range leaves {
		texts = append(texts, l.Error())
	}
	require.Equal(t, []string{
		"apply: planning a@n1: disk full on n1",
		"apply: x",
		"apply: wrapped: disk full on n2",
		"apply: apply stopped: context canceled",
	}, texts)
	var ne *nodeErr
	require.ErrorAs(t, leaves[0], &ne)
	require.Equal(t, "n1", ne.node)
	require.ErrorAs(t, leaves[2], &ne)
	require.Equal(t, "n2", ne.node)
	require.Nil(t, Flatten(nil))
	one := errors.New("one")
	require.Equal(t, []error{one}, Flatten(one))
}

func TestGroupByNode(t *testing.T) {
	var ps []Problem
	for i := 1; i <= 100; i++ {
		n := fmt.Sprintf("web-%d", i)
		ps = append(ps, Problem{Node: n, Text: `role "greet" on ` + n + `: attribute "app.greeting" has no value; looked at: node ` + n + `, deployment`})
	}
	ps = append(ps, Problem{Node: "web-7", Text: "web-7: disk full"})
	ps = append(ps, Problem{Text: "the state store is read-only"})
	ps = append(ps, Problem{Node: "web-10", Text: "web-10: disk full"})
	gs := GroupByNode(ps)
	require.Len(t, gs, 3)
	require.Equal(t, `role "greet" on <node>: attribute "app.greeting" has no value; looked at: node <node>, deployment`, gs[0].Text)
	require.Len(t, gs[0].Nodes, 100)
	require.Equal(t, "web-1 … web-100 (100 nodes)", Nodes(gs[0].Nodes))
	require.Equal(t, "<node>: disk full", gs[1].Text)
	require.Equal(t, []string{"web-7", "web-10"}, gs[1].Nodes)
	require.Equal(t, 100, gs[1].First)
	require.Equal(t, "the state store is read-only", gs[2].Text)

	// One node keeps its text; web-1 is not a part of web-10.
	gs = GroupByNode([]Problem{{Node: "web-1", Text: "web-10 is down, seen from web-1"}})
	require.Equal(t, "web-10 is down, seen from web-1", gs[0].Text)
	gs = GroupByNode([]Problem{{Node: "n1", Text: "n1 n1 n1.lab"}, {Node: "node", Text: "node node node.lab"}})
	require.Len(t, gs, 1)
	require.Equal(t, "<node> <node> <node>.lab", gs[0].Text)
}

func TestNodesAndCompare(t *testing.T) {
	require.Equal(t, "", Nodes(nil))
	require.Equal(t, "n1", Nodes([]string{"n1"}))
	require.Equal(t, "n1, n2, n3", Nodes([]string{"n1", "n2", "n3"}))
	require.Equal(t, "n1 … n9 (4 nodes)", Nodes([]string{"n1", "n2", "n3", "n9"}))
	for _, c := range []struct {
		a, b string
		less bool
	}{{"web-2", "web-10", true}, {"web-10", "web-2", false}, {"a", "b", true}, {"n01", "n2", true}, {"n", "n1", true}, {"x9y", "x10a", true}} {
		require.Equal(t, c.less, Compare(c.a, c.b) < 0, "%s < %s", c.a, c.b)
	}
}

func TestOneLine(t *testing.T) {
	require.Equal(t, "2 errors occurred: * a * b", OneLine("2 errors occurred:\n\t* a\n\t* b\n\n"))
	require.Equal(t, "plain", OneLine("plain"))
}
