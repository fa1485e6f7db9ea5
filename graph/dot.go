package graph

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// actionColour is the colour of a node-role in DOT pictures by its
// planned action.
func actionColour(a Action) string {
	switch a {
	case ActionRun:
		return "#ffd27f" // orange: will run
	case ActionRunIfChanged:
		return "#fff1b8" // pale yellow: runs if its inputs change
	case ActionSkip:
		return "#e0e0e0" // grey: converged
	case ActionHold:
		return "#d7b8f3" // violet: held until forced
	}
	return ""
}

// stateColour is the colour of a node-role in DOT pictures by the state
// it ended an Apply in.
func stateColour(s State) string {
	switch s {
	case StatePending:
		return "#ffffff"
	case StateRunning, StateRetrying:
		return "#9ecbff"
	case StateSucceeded:
		return "#9be59b"
	case StateFailed:
		return "#f28b82"
	case StateBlocked:
		return "#f9c89b"
	case StateSkipped:
		return "#e0e0e0"
	}
	return ""
}

// WriteDOT draws the plan as a Graphviz graph: one box per node-role,
// grouped by node, an arrow from each node-role to those that wait for it.
// Boxes are coloured by the plan's action, or — when res, the result of
// applying the plan, is not nil — by the state each node-role ended in.
// Render it with `dot -Tsvg plan.dot -o plan.svg`.
func WriteDOT(w io.Writer, p *Plan, res *Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "digraph %s {\n", dotID(p.Deployment))
	fmt.Fprintf(bw, "  label=%s;\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n", dotID("deployment "+p.Deployment))
	byNode := map[string][]int{}
	var names []string
	for i, s := range p.Steps {
		if _, ok := byNode[s.Node]; !ok {
			names = append(names, s.Node)
		}
		byNode[s.Node] = append(byNode[s.Node], i)
	}
	sort.Strings(names)
	box := func(indent string, i int) {
		s := p.Steps[i]
		label, colour, tip := s.Role, actionColour(s.Action), s.Action.String()+": "+s.Reason
		if res != nil {
			o := res.Outcomes[i]
			label += "\\n" + o.State.String()
			colour, tip = stateColour(o.State), o.State.String()+": "+o.Reason
			if o.Err != nil {
				tip += ": " + o.Err.Error()
			}
		} else {
			label += "\\n" + s.Action.String()
		}
		fmt.Fprintf(bw, "%s%s [label=%s, fillcolor=%s, tooltip=%s];\n", indent, dotID(s.ID), dotLabel(label), dotID(colour), dotID(tip))
	}
	for k, n := range names {
		if n == "" {
			for _, i := range byNode[n] {
				box("  ", i)
			}
			continue
		}
		fmt.Fprintf(bw, "  subgraph cluster_%d {\n    label=%s;\n    style=dashed;\n", k, dotID(n))
		for _, i := range byNode[n] {
			box("    ", i)
		}
		bw.WriteString("  }\n")
	}
	for _, s := range p.Steps {
		for _, dep := range s.WaitsFor {
			fmt.Fprintf(bw, "  %s -> %s;\n", dotID(dep), dotID(s.ID))
		}
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// dotID quotes s as a DOT string.
func dotID(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// dotLabel quotes a label that already holds DOT line breaks ("\n").
func dotLabel(s string) string {
	return `"` + strings.NewReplacer(`"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
