package cli

import (
	"errors"
	"fmt"

	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/internal/problems"
)

// nodeOf returns the node an error is about, when it says.
func nodeOf(err error) string {
	var ne *deploy.NodeError
	if errors.As(err, &ne) {
		return ne.Node
	}
	return problems.NodeOf(err)
}

// problemLines flattens err and groups the causes that differ only in
// their node: one line per distinct problem, "… on web-1 … web-100 (100
// nodes)" for a group.
func problemLines(err error) []string {
	var out []string
	for _, c := range problems.Causes(err, nodeOf) {
		out = append(out, c.Text)
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
