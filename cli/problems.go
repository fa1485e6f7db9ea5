package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/problems"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

// nodeOf returns the node an error is about, when it says.
func nodeOf(err error) string {
	var ne *deploy.NodeError
	var be *role.BindError
	var nre *graph.NodeRoleError
	switch {
	case errors.As(err, &ne):
		return ne.Node
	case errors.As(err, &be):
		return be.Node
	case errors.As(err, &nre):
		_, node, _ := strings.Cut(nre.ID, "@")
		return node
	}
	return ""
}

// problemLines flattens err and groups the causes that differ only in
// their node: one line per distinct problem, "… on web-1 … web-100 (100
// nodes)" for a group.
func problemLines(err error) []string {
	leaves := problems.Flatten(err)
	ps := make([]problems.Problem, len(leaves))
	for i, l := range leaves {
		ps[i] = problems.Problem{Node: nodeOf(l), Text: problems.OneLine(l.Error())}
	}
	var out []string
	for _, g := range problems.GroupByNode(ps) {
		line := g.Text
		if len(g.Nodes) > 1 {
			line += " — on " + problems.Nodes(g.Nodes)
		}
		out = append(out, line)
	}
	return out
}

// failErr reports err, one problem a line, and returns ExitFailure.
func (c *command) failErr(what string, err error) int {
	lines := problemLines(err)
	prefix := c.app.Name + " " + c.name + ": "
	if what != "" {
		prefix += what + ": "
	}
	switch len(lines) {
	case 0:
		fmt.Fprintf(c.errw, "%s%v\n", prefix, err)
	case 1:
		fmt.Fprintf(c.errw, "%s%s\n", prefix, lines[0])
	default:
		fmt.Fprintf(c.errw, "%s%d problems:\n", prefix, len(lines))
		for _, l := range lines {
			fmt.Fprintf(c.errw, "  %s\n", l)
		}
	}
	return ExitFailure
}

// planDiagnostics turns a plan's wiring errors into spec diagnostics, one
// per distinct problem: a missing attribute on 100 nodes is one
// diagnostic at the role block, naming the nodes.
func planDiagnostics(sp *spec.Spec, err error) hcl.Diagnostics {
	leaves := problems.Flatten(err)
	ps := make([]problems.Problem, len(leaves))
	for i, l := range leaves {
		ps[i] = problems.Problem{Node: nodeOf(l), Text: problems.OneLine(l.Error())}
		var be *role.BindError
		if errors.As(l, &be) {
			// Group by what the message says, not by the wrapper's text
			// (graph prefixes each with the node-role).
			ps[i].Key = be.Error()
		}
	}
	var diags hcl.Diagnostics
	for _, g := range problems.GroupByNode(ps) {
		leaf := leaves[g.First]
		var be *role.BindError
		if len(g.Nodes) > 1 && errors.As(leaf, &be) {
			leaf = groupedBindError(be, g.Nodes)
		}
		diags = append(diags, sp.Diagnostics(leaf)...)
	}
	return diags
}

// groupedBindError is be restated for all of nodes: the node list where
// the node was, and the node's name taken out of what was looked at.
func groupedBindError(be *role.BindError, nodes []string) *role.BindError {
	cp := *be
	cp.Node = problems.Nodes(nodes)
	cp.Looked = make([]string, len(be.Looked))
	for i, l := range be.Looked {
		if l == "node "+be.Node {
			l = "node"
		}
		cp.Looked[i] = l
	}
	if be.Err != nil {
		cp.Err = errors.New(problems.WithoutNode(be.Err.Error(), be.Node))
	}
	return &cp
}
