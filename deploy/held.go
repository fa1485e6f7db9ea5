package deploy

import (
	"fmt"
	"strings"

	"github.com/masonops/mason/graph"
)

// Held returns the plan's held node-roles: destructive roles whose run was
// interrupted, which mason will not run again by itself.
func Held(p *graph.Plan) []graph.Step {
	var out []graph.Step
	for _, s := range p.Steps {
		if s.Action == graph.ActionHold {
			out = append(out, s)
		}
	}
	return out
}

// ResumeHint says, for each held node-role of p, why it is held and the
// exact command that resumes it: command followed by force(id) ("-force
// wipe-disk@n3"). It returns "" when nothing is held.
func ResumeHint(p *graph.Plan, command string, force func(id string) string) string {
	held := Held(p)
	if len(held) == 0 {
		return ""
	}
	var b strings.Builder
	var args []string
	for _, s := range held {
		fmt.Fprintf(&b, "%s is held: %s\n", s.ID, s.Reason)
		args = append(args, force(s.ID))
	}
	fmt.Fprintf(&b, "when the deployment is as it should be, resume with:\n  %s %s\n", command, strings.Join(args, " "))
	return b.String()
}
