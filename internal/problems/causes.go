package problems

import (
	"errors"
	"strings"

	"github.com/masonops/mason/role"
)

// Cause is one distinct problem of an error tree: the leaves that say the
// same thing but for the node they happened on.
type Cause struct {
	// Errs are its occurrences, leaves of the tree as Flatten returns
	// them, in order; errors.As works on each.
	Errs []error
	// Nodes are the nodes it happened on, in natural order; none when it
	// concerns no node.
	Nodes []string
	// Text says it once, on one line, naming the nodes.
	Text string
}

// NodeOf returns the node an error is about, when it says: a
// *role.BindError's node, or that of an error with a Node() string method
// (graph.NodeRoleError).
func NodeOf(err error) string {
	var be *role.BindError
	var nn interface{ Node() string }
	switch {
	case errors.As(err, &be):
		return be.Node
	case errors.As(err, &nn):
		return nn.Node()
	}
	return ""
}

// Causes flattens err and groups its leaves that differ only in their
// node (nodeOf tells a leaf's node, "" for none; nil means NodeOf), in the order of their
// first occurrence. A leaf that is a *role.BindError speaks for itself:
// the wrappers around it only name the node-role it already names, and a
// group of them reads as the BindError restated for all its nodes
// ("role "greet" on web-1 … web-100 (100 nodes): input …"). Other groups
// read "<text with <node>> — on n1, n2, n3".
func Causes(err error, nodeOf func(error) string) []Cause {
	leaves := Flatten(err)
	if len(leaves) == 0 {
		return nil
	}
	if nodeOf == nil {
		nodeOf = NodeOf
	}
	ps := make([]Problem, len(leaves))
	bes := make([]*role.BindError, len(leaves))
	for i, l := range leaves {
		ps[i] = Problem{Node: nodeOf(l), Text: OneLine(l.Error())}
		var be *role.BindError
		if errors.As(l, &be) {
			bes[i] = be
			ps[i].Text = OneLine(be.Error())
		}
	}
	groups := GroupByNode(ps)
	// GroupByNode keeps the first index only: collect every occurrence.
	member := make([][]error, len(groups))
	index := map[string]int{}
	for gi, g := range groups {
		index[WithoutNode(ps[g.First].Text, ps[g.First].Node)] = gi
	}
	for i, p := range ps {
		gi := index[WithoutNode(p.Text, p.Node)]
		member[gi] = append(member[gi], leaves[i])
	}
	out := make([]Cause, len(groups))
	for gi, g := range groups {
		c := Cause{Errs: member[gi], Text: g.Text}
		if len(g.Nodes) > 1 || g.Nodes[0] != "" {
			c.Nodes = g.Nodes
		}
		if len(g.Nodes) > 1 {
			if be := bes[g.First]; be != nil {
				c.Text = OneLine(OnNodes(be, g.Nodes).Error())
			} else {
				c.Text += " — on " + Nodes(g.Nodes)
			}
		}
		out[gi] = c
	}
	return out
}

// OnNodes is be restated for all of nodes, which failed the same way: the
// node list where the node was, and the node's name taken out of what
// was looked at.
func OnNodes(be *role.BindError, nodes []string) *role.BindError {
	cp := *be
	cp.Node = Nodes(nodes)
	cp.Looked = make([]string, len(be.Looked))
	for i, l := range be.Looked {
		switch {
		case l == "node "+be.Node:
			l = "node"
		case strings.HasSuffix(l, " on node "+be.Node):
			l = strings.TrimSuffix(l, " on node "+be.Node) + " on each node"
		}
		cp.Looked[i] = l
	}
	if be.Err != nil {
		cp.Err = errors.New(WithoutNode(be.Err.Error(), be.Node))
	}
	return &cp
}
