package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"

	"github.com/masonops/mason/graph"
)

// DOT writes the plan as a Graphviz digraph: one box per node-role,
// coloured by its action, an edge from each node-role to what it waits
// for, node-roles grouped by node.
func DOT(w io.Writer, p *graph.Plan) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "digraph %s {\n  rankdir=BT;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n", strconv.Quote(p.Deployment))
	byNode := map[string][]graph.Step{}
	var order []string
	for _, s := range p.Steps {
		if _, ok := byNode[s.Node]; !ok {
			order = append(order, s.Node)
		}
		byNode[s.Node] = append(byNode[s.Node], s)
	}
	for i, n := range order {
		indent := "  "
		if n != "" {
			fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", i, strconv.Quote(n))
			indent = "    "
		}
		for _, s := range byNode[n] {
			fmt.Fprintf(&b, "%s%s [label=%s, fillcolor=%s, tooltip=%s];\n", indent, strconv.Quote(s.ID),
				strconv.Quote(s.Role+"\n"+s.Action.String()), color(s.Action), strconv.Quote(s.Reason))
		}
		if n != "" {
			b.WriteString("  }\n")
		}
	}
	for _, s := range p.Steps {
		for _, dep := range s.WaitsFor {
			fmt.Fprintf(&b, "  %s -> %s;\n", strconv.Quote(s.ID), strconv.Quote(dep))
		}
	}
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

func color(a graph.Action) string {
	switch a {
	case graph.ActionRun:
		return `"#ffd27f"`
	case graph.ActionRunIfChanged:
		return `"#fff1c1"`
	case graph.ActionHold:
		return `"#ff9b9b"`
	}
	return `"#c8e6c9"`
}

// SVG renders DOT source to SVG with Graphviz's dot, which must be
// installed.
func SVG(ctx context.Context, w io.Writer, dot []byte) error {
	path, err := exec.LookPath("dot")
	if err != nil {
		return fmt.Errorf("rendering SVG needs Graphviz's dot, which is not installed (Debian: apt-get install graphviz); without -format svg, graph prints DOT: %w", err)
	}
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin = bytes.NewReader(dot)
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dot -Tsvg: %w: %s", err, stderr.String())
	}
	return nil
}
