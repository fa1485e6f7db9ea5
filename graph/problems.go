package graph

import (
	"errors"
	"fmt"
	"strings"

	"github.com/masonops/mason/internal/problems"
)

// Problems is the error of [NewPlan] and [Apply] when more than one thing
// went wrong: every distinct cause once, flat, in the order first met. A
// cause that differs only in the node it happened on — the same missing
// attribute on 100 nodes, the same failure of a role everywhere — is one
// [Problem] naming the nodes. Its text is a line per problem:
//
//	graph: planning web: 2 problems:
//	  role "greet" on web-1 … web-100 (100 nodes): input Name (string, attr "greet.name"): attribute "greet.name" has no value; looked at: …
//	  dependency cycle: a@n1 → b@n1 → a@n1 (…)
//
// Nothing is lost: errors.As finds the typed errors inside
// (*role.BindError, *CycleError, *NodeRoleError, *BreakerError), and each
// Problem keeps every occurrence. When only one thing went wrong, NewPlan
// and Apply return that error itself.
type Problems struct {
	// Op is what failed: "planning web", "apply of web".
	Op string
	// List holds the distinct problems.
	List []*Problem
}

// Error renders the problems, one a line after a header.
func (e *Problems) Error() string {
	if len(e.List) == 1 {
		return "graph: " + e.Op + ": " + e.List[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "graph: %s: %d problems:", e.Op, len(e.List))
	for _, p := range e.List {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *Problems) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, p := range e.List {
		out[i] = p
	}
	return out
}

// Problem is one distinct cause, on one node, several, or none.
type Problem struct {
	// Err is its first occurrence, as it was returned (errors.As on it
	// finds the typed error; on a *role.BindError, Node is that
	// occurrence's node).
	Err error
	// Errs is every occurrence, Err first.
	Errs []error
	// Nodes are the nodes it happened on, in natural order (web-2 before
	// web-10); none when it concerns no node.
	Nodes []string

	text string
}

// Error says the problem once, on one line, naming its nodes.
func (p *Problem) Error() string { return p.text }

// Unwrap returns every occurrence, for errors.Is and errors.As.
func (p *Problem) Unwrap() []error { return p.Errs }

// gather groups err's causes as Problems for op; a single cause on at
// most one node is returned alone (out of a one-error list).
func gather(op string, err error) error {
	if err == nil {
		return nil
	}
	var already *Problems
	if errors.As(err, &already) && error(already) == err {
		return err
	}
	causes := problems.Causes(err, nil)
	if len(causes) == 1 && len(causes[0].Errs) == 1 {
		return causes[0].Errs[0] // the one leaf, out of its list
	}
	ps := &Problems{Op: op, List: make([]*Problem, len(causes))}
	for i, c := range causes {
		// The header says it is the graph's.
		ps.List[i] = &Problem{Err: c.Errs[0], Errs: c.Errs, Nodes: c.Nodes, text: strings.TrimPrefix(c.Text, "graph: ")}
	}
	return ps
}

// Node returns the node the failed node-role ran on ("" for service
// scope).
func (e *NodeRoleError) Node() string {
	_, node, _ := strings.Cut(e.ID, "@")
	return node
}
