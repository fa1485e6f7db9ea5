// Package problems turns error trees into problems a person reads once
// each: it flattens nested multi-errors (go-multierror, errors.Join) into
// their leaves, keeping the context each wrapper added, and groups
// problems that differ only in the node they happened on, so a missing
// attribute on 100 nodes reads as one problem "on web-1 … web-100 (100
// nodes)". The front end (package cli) and the progress display share it.
package problems

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Flatten returns the leaves of err's tree of multi-errors, in order. A
// leaf reached through wrappers (fmt.Errorf("planning x: %w", multi))
// keeps the wrappers' text as a prefix of its message; Unwrap on a leaf
// still leads to the original error, so errors.As works on each. A nil err
// has no leaves.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	var out []error
	flatten(err, "", &out)
	return out
}

func flatten(err error, prefix string, out *[]error) {
	// Walk down single wrappers to the first multi-error, if any.
	for e := err; e != nil; {
		if list, ok := listOf(e); ok {
			text := err.Error()
			inner := e.Error()
			p, ok := strings.CutSuffix(text, inner)
			if !ok {
				break // the wrapper does not end with the list: keep it whole
			}
			for _, c := range list {
				if c != nil {
					flatten(c, prefix+p, out)
				}
			}
			return
		}
		e = errors.Unwrap(e)
	}
	if prefix == "" {
		*out = append(*out, err)
		return
	}
	*out = append(*out, &prefixed{prefix: prefix, err: err})
}

// listOf returns the errors a multi-error holds: errors.Join's and
// go-multierror's (whose Unwrap walks a chain instead).
func listOf(e error) ([]error, bool) {
	switch m := e.(type) {
	case interface{ WrappedErrors() []error }:
		return m.WrappedErrors(), true
	case interface{ Unwrap() []error }:
		return m.Unwrap(), true
	}
	return nil, false
}

// prefixed is a leaf with the text its wrappers added.
type prefixed struct {
	prefix string
	err    error
}

func (p *prefixed) Error() string { return p.prefix + p.err.Error() }
func (p *prefixed) Unwrap() error { return p.err }

// Problem is one error on one node ("" when it concerns no node).
type Problem struct {
	Node string
	// Key groups problems: equal keys (after the node's name is taken out)
	// are one problem. "" means Text.
	Key string
	// Text says what went wrong; occurrences of Node in it are taken out
	// when problems are grouped.
	Text string
}

// Group is problems that differ only in their node.
type Group struct {
	// Text is the problem's text with each node's name replaced by
	// Placeholder (when there are several nodes) or as it was (one node).
	Text string
	// Nodes are the nodes it happened on, in natural order ("" for none).
	Nodes []string
	// First is the index of the group's first problem in the input.
	First int
}

// Placeholder stands for the node's name in the text of a group of
// several nodes.
const Placeholder = "<node>"

// GroupByNode groups problems whose key, with the node's name replaced by
// Placeholder, is the same, in the order of their first occurrence.
func GroupByNode(ps []Problem) []Group {
	var groups []Group
	index := map[string]int{}
	texts := map[string]string{} // group key → its text, node taken out
	for i, p := range ps {
		key := p.Key
		if key == "" {
			key = p.Text
		}
		key = WithoutNode(key, p.Node)
		g, ok := index[key]
		if !ok {
			g = len(groups)
			index[key] = g
			groups = append(groups, Group{Text: p.Text, First: i})
			texts[key] = WithoutNode(p.Text, p.Node)
		}
		if !slices.Contains(groups[g].Nodes, p.Node) {
			groups[g].Nodes = append(groups[g].Nodes, p.Node)
		}
		if len(groups[g].Nodes) > 1 {
			groups[g].Text = texts[key]
		}
	}
	for i := range groups {
		slices.SortFunc(groups[i].Nodes, Compare)
	}
	return groups
}

// withoutNode replaces node, as a whole word, by Placeholder in s.
func WithoutNode(s, node string) string {
	if node == "" || !strings.Contains(s, node) {
		return s
	}
	re := regexp.MustCompile(`(^|[^\w.-])` + regexp.QuoteMeta(node) + `($|[^\w-])`)
	// Adjacent matches share a boundary character, so replace until none
	// is left; a NUL stands in until then, so that a node named like the
	// placeholder cannot match again.
	for {
		t := re.ReplaceAllString(s, "${1}\x00${2}")
		if t == s {
			return strings.ReplaceAll(s, "\x00", Placeholder)
		}
		s = t
	}
}

// Nodes names a set of nodes for a sentence: "n1", "n1, n2, n3", or, for
// more than three, "web-1 … web-100 (100 nodes)". nodes must be in
// natural order.
func Nodes(nodes []string) string {
	switch {
	case len(nodes) == 0:
		return ""
	case len(nodes) <= 3:
		return strings.Join(nodes, ", ")
	}
	return nodes[0] + " … " + nodes[len(nodes)-1] + " (" + strconv.Itoa(len(nodes)) + " nodes)"
}

// Compare orders names naturally: runs of digits by their value, so
// web-2 comes before web-10.
func Compare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// OneLine puts a message on one line: line breaks and the indentation
// after them become one space.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return strings.Join(slices.DeleteFunc(f, func(s string) bool { return s == "" }), " ")
}
