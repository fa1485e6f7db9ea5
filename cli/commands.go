package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/deploy"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/problems"
	"github.com/masonops/mason/progress"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

func converged(p *graph.Plan) bool { return p.Converged() }

func (c *command) fail(format string, args ...any) int {
	fmt.Fprintf(c.errw, "%s %s: %s\n", c.app.Name, c.name, fmt.Sprintf(format, args...))
	return ExitFailure
}

// planned loads the spec, the state and the nodes and plans the
// deployment; the caller closes the session when the code is ExitOK.
func (c *command) planned(ctx context.Context) (*session, *graph.Deployment, *graph.Plan, int) {
	s, code := c.load(ctx)
	if code != ExitOK {
		return nil, nil, nil, code
	}
	d, p, code := c.planFor(ctx, s)
	if code != ExitOK {
		s.close()
		return nil, nil, nil, code
	}
	return s, d, p, ExitOK
}

func (c *command) plan(ctx context.Context) int {
	s, _, p, code := c.planned(ctx)
	if code != ExitOK {
		return code
	}
	defer s.close()
	missing := s.missing()
	left := c.left(s, p)
	if len(missing) == 0 && converged(p) && len(left) == 0 {
		fmt.Fprintf(c.out, "no changes: %s is converged (%s)\n", p.Deployment, nodeRoles(len(p.Steps)))
		return ExitOK
	}
	for _, ns := range missing {
		fmt.Fprintf(c.out, "create node %s (provider %s, id %s)\n", ns.Name, s.prov.Name(), ns.ID)
	}
	fmt.Fprint(c.out, p.String())
	for _, l := range left {
		fmt.Fprintln(c.out, l)
	}
	fmt.Fprint(c.out, c.resumeHint(p))
	return ExitOK
}

// left lists the node-roles the journal knows on nodes still in the
// deployment whose role is no longer bound there (nodes that left are in
// the plan's removals).
func (c *command) left(s *session, p *graph.Plan) []string {
	var out []string
	for _, id := range p.Orphans {
		out = append(out, "  orphan         "+id+": its role is no longer bound there; nothing runs for it ("+c.app.Name+" destroy forgets it)")
	}
	return out
}

// removalHint names the command that removes a node whose undo failed
// ("" when none failed).
func (c *command) removalHint(err error) string {
	var re *graph.RemovalError
	if !errors.As(err, &re) || re.ID == "" {
		return ""
	}
	return fmt.Sprintf("to remove node %s although its undo fails (it is already gone, say): %s\n", re.Node, c.commandLine("apply", "-force-remove", re.Node))
}

// resumeHint says which node-roles are held and the command that resumes
// them ("" when none is).
func (c *command) resumeHint(p *graph.Plan) string {
	return deploy.ResumeHint(p, c.commandLine("apply"), func(id string) string { return "-force " + shellQuote(id) })
}

func (c *command) apply(ctx context.Context) int {
	s, code := c.load(ctx)
	if code != ExitOK {
		return code
	}
	defer s.close()
	report := c.out
	if c.jsonOut {
		report = c.errw
	}
	if len(s.missing()) > 0 {
		nodes, err := s.dep.CreateNodes(ctx, func(n *provider.Node) {
			fmt.Fprintf(report, "created node %s (%s)\n", n.Name, n.ID)
		})
		s.nodes = nodes
		if err != nil {
			return c.failErr("creating nodes", err)
		}
	}
	_, p, code := c.planFor(ctx, s)
	if code != ExitOK {
		return code
	}
	if converged(p) {
		fmt.Fprintf(report, "no changes: %s is converged (%s)\n", p.Deployment, nodeRoles(len(p.Steps)))
		return ExitOK
	}
	var sub graph.Subscriber
	if c.jsonOut {
		sub = graph.JSONLines(c.out)
	} else {
		show := progress.New(c.out, progress.Options{})
		defer show.Close() // also when Apply panics: the terminal is left tidy
		sub = show
	}
	opts := graph.Options{Parallelism: c.parallelism, Events: sub}
	if c.sharedState() {
		// A shared store means other controllers may apply the same
		// deployment: claim each node-role before running it.
		opts.Controller = &graph.Controller{Name: controllerName()}
	}
	res, err := graph.Apply(ctx, p, opts)
	if show, ok := sub.(*progress.Display); ok {
		_ = show.Close()
	}
	if res != nil {
		fmt.Fprintf(report, "apply %s: %d succeeded, %d failed, %d blocked, %d unchanged in %s\n", p.Deployment,
			res.Count(graph.StateSucceeded), res.Count(graph.StateFailed), res.Count(graph.StateBlocked),
			res.Count(graph.StateSkipped), res.Elapsed.Round(time.Millisecond))
	}
	if res != nil {
		for _, rm := range res.Removals {
			switch {
			case rm.Done && rm.Err != nil:
				fmt.Fprintf(report, "removed node %s by force; its failed undos: %s\n", rm.Node, oneLine(rm.Err.Error()))
			case rm.Done:
				fmt.Fprintf(report, "removed node %s\n", rm.Node)
			}
		}
	}
	if err != nil {
		code := c.failErr("", err)
		fmt.Fprint(c.errw, c.resumeHint(p))
		fmt.Fprint(c.errw, c.removalHint(err))
		return code
	}
	return ExitOK
}

func (c *command) graph(ctx context.Context) int {
	s, _, p, code := c.planned(ctx)
	if code != ExitOK {
		return code
	}
	defer s.close()
	var dot bytes.Buffer
	if err := graph.WriteDOT(&dot, p, nil); err != nil {
		return c.fail("%v", err)
	}
	if c.format == "svg" {
		if err := renderSVG(ctx, c.out, dot.Bytes()); err != nil {
			return c.fail("%v", err)
		}
		return ExitOK
	}
	if _, err := c.out.Write(dot.Bytes()); err != nil {
		return c.fail("%v", err)
	}
	return ExitOK
}

func (c *command) status(ctx context.Context) int {
	s, code := c.load(ctx)
	if code != ExitOK {
		return code
	}
	defer s.close()
	entries, err := graph.ReadJournal(ctx, s.st, s.spec.Name)
	if err != nil {
		return c.fail("reading the journal of %s: %v", s.spec.Name, err)
	}
	seen := map[string]bool{}
	counts := map[string]int{}
	tw := tabwriter.NewWriter(c.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE-ROLE\tSTATE\tATTEMPT\tAT\tDETAIL")
	for _, e := range entries {
		seen[e.ID] = true
		counts[e.State.String()]++
		detail := ""
		switch e.State {
		case graph.StateFailed:
			detail = "error: " + oneLine(e.Error)
		case graph.StateBlocked:
			detail = "blocked by " + e.BlockedBy
			if e.Error != "" {
				detail += ": " + oneLine(e.Error)
			}
		case graph.StateRunning, graph.StateRetrying, graph.StatePending:
			detail = "interrupted or still running"
			if e.Reason != "" {
				detail += " (" + e.Reason + ")"
			}
		default:
			if e.Reason != "" {
				detail = e.Reason
			}
		}
		if !e.Succeeded.IsZero() && e.State != graph.StateSucceeded {
			detail += fmt.Sprintf("; last succeeded %s", e.Succeeded.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.ID, e.State, e.Attempt, e.At.UTC().Format(time.RFC3339), detail)
	}
	// Node-roles of the spec the journal has never seen, and nodes that
	// left.
	var removals []graph.Removal
	if d, err := s.spec.Deployment(s.nodes); err == nil {
		d.UseKEK(s.kek())
		s.dep.PlanRemovals(d)
		if p, err := graph.NewPlan(ctx, d, s.st, graph.SkipChecks()); err == nil {
			for _, st := range p.Steps {
				if !seen[st.ID] {
					counts["never run"]++
					detail := ""
					if len(st.WaitsFor) > 0 {
						detail = "waits for " + strings.Join(st.WaitsFor, ", ")
					}
					fmt.Fprintf(tw, "%s\t%s\t\t\t%s\n", st.ID, "never run", detail)
				}
			}
			removals = p.Removals
		}
	}
	tw.Flush()
	for _, rm := range removals {
		fmt.Fprintf(c.out, "node %s: %s; %s removes it\n", rm.Node, rm.Reason, c.commandLine("apply"))
	}
	var parts []string
	for _, k := range []string{"succeeded", "failed", "blocked", "running", "retrying", "pending", "skipped", "never run"} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	if len(parts) == 0 {
		parts = []string{"nothing has run"}
	}
	fmt.Fprintf(c.out, "%s: %s\n", s.spec.Name, strings.Join(parts, ", "))
	if counts["failed"] > 0 || counts["blocked"] > 0 {
		return ExitFailure // for scripts and CI: the deployment is not healthy
	}
	return ExitOK
}

func oneLine(s string) string { return problems.OneLine(s) }

// nodeRoles is "1 node-role", "7 node-roles".
func nodeRoles(n int) string {
	if n == 1 {
		return "1 node-role"
	}
	return fmt.Sprintf("%d node-roles", n)
}

func (c *command) why(ctx context.Context) int {
	s, d, p, code := c.planned(ctx)
	if code != ExitOK {
		return code
	}
	defer s.close()
	id := c.args[0]
	step, ok := p.Step(id)
	if !ok && removalWhy(c.out, p, id) {
		return ExitOK
	}
	if !ok {
		var ids []string
		for _, st := range p.Steps {
			ids = append(ids, st.ID)
		}
		fmt.Fprintf(c.errw, "%s why: %s has no node-role %q; it has: %s\n", c.app.Name, p.Deployment, id, strings.Join(ids, ", "))
		return ExitUsage
	}
	w := c.out
	fmt.Fprintf(w, "%s: %s — %s\n", step.ID, step.Action, step.Reason)
	rb := s.spec.Role(step.Role)
	if rb != nil {
		where := "the deployment (service role)"
		if len(rb.On) > 0 {
			where = "pool " + strings.Join(rb.On, ", pool ")
		}
		fmt.Fprintf(w, "  bound at %s:%d to %s\n", rb.Range.Filename, rb.Range.Start.Line, where)
	}
	entries, err := graph.ReadJournal(ctx, s.st, s.spec.Name)
	if err != nil {
		return c.fail("reading the journal: %v", err)
	}
	for _, e := range entries {
		if e.ID != step.ID {
			continue
		}
		fmt.Fprintf(w, "  last: %s (attempt %d) at %s", e.State, e.Attempt, e.At.UTC().Format(time.RFC3339))
		if e.Error != "" {
			fmt.Fprintf(w, ": %s", oneLine(e.Error))
		}
		if e.BlockedBy != "" {
			fmt.Fprintf(w, ", blocked by %s", e.BlockedBy)
		}
		fmt.Fprintln(w)
		if !e.Succeeded.IsZero() {
			fmt.Fprintf(w, "  last success: %s, version %s\n", e.Succeeded.UTC().Format(time.RFC3339), e.Version)
		}
	}
	if len(step.WaitsFor) > 0 {
		fmt.Fprintln(w, "  waits for:")
		for _, dep := range step.WaitsFor {
			ds, _ := p.Step(dep)
			fmt.Fprintf(w, "    %s: %s — %s\n", dep, ds.Action, ds.Reason)
		}
	}
	if rb == nil {
		return ExitOK
	}
	vals := d.Attrs().Clone()
	if step.Node != "" {
		vals.Merge(d.NodeAttrs(step.Node))
	}
	bound, err := p.Inputs(step.ID)
	if err != nil {
		return c.failErr("binding "+step.ID, err)
	}
	from := make(map[string]role.Binding, len(bound))
	for _, b := range bound {
		from[b.Field] = b
	}
	fmt.Fprintln(w, "  inputs:")
	for _, in := range rb.Def.Inputs() {
		c.explainInput(s.spec, rb, in, from[in.Field], vals)
	}
	return ExitOK
}

// explainInput prints where one input's value comes from: b is where the
// plan binds it from (graph.Plan.Inputs, the graph's own wiring), vals the
// attribute layers, for the values an attribute overrides.
func (c *command) explainInput(sp *spec.Spec, rb *spec.RoleBlock, in role.Input, b role.Binding, vals *attr.Values) {
	w := c.out
	refText := ""
	for _, ref := range rb.Refs {
		if ref.Input == in.Field {
			refText = fmt.Sprintf(" (spec reference at %s:%d:%d)", ref.Range.Filename, ref.Range.Start.Line, ref.Range.Start.Column)
		}
	}
	var outputs []string
	for _, src := range b.Sources {
		if src.Layer == attr.LayerOutput && src.Role != "" {
			id := src.Role
			if src.Node != "" {
				id += "@" + src.Node
			}
			outputs = append(outputs, id)
		}
	}
	switch {
	case in.Kind == role.InputUses:
		text := "a service the application registers, or a capability of the node's transport"
		if len(b.Sources) > 0 {
			text = b.Sources[0].String()
		}
		fmt.Fprintf(w, "    %s <- %s\n", in.Describe(), text)
		return
	case in.Kind != role.InputAttr:
		if len(outputs) == 0 {
			outputs = []string{"nothing (optional: zero value)"}
		}
		fmt.Fprintf(w, "    %s <- output of %s%s\n", in.Describe(), strings.Join(outputs, ", "), refText)
		return
	case len(outputs) > 0:
		fmt.Fprintf(w, "    %s <- output of %s, published as attribute %q%s\n", in.Describe(), strings.Join(outputs, ", "), in.Attr, refText)
		return
	}
	vs := vals.Explain(in.Attr)
	if len(vs) == 0 {
		switch {
		case in.HasDefault:
			fmt.Fprintf(w, "    %s = %s <- default tag of %s.%s\n", in.Describe(), in.Default, rb.Name, in.Field)
		case in.Optional:
			fmt.Fprintf(w, "    %s <- nothing (optional: zero value)\n", in.Describe())
		default:
			fmt.Fprintf(w, "    %s <- nothing: set it in the spec's attrs\n", in.Describe())
		}
		return
	}
	fmt.Fprintf(w, "    %s = %s <- %s\n", in.Describe(), valueText(vs[0], in.Type), sourceText(sp, vs[0].Source))
	for _, v := range vs[1:] {
		fmt.Fprintf(w, "        overrides %s <- %s\n", valueText(v, in.Type), sourceText(sp, v.Source))
	}
}

// sourceText says where a value came from. A value written in a role
// block's attrs says which block: "role block etcd-bootstrap
// (probe.hcl:39)" rather than "deployment (probe.hcl:39)".
func sourceText(sp *spec.Spec, src attr.Source) string {
	if src.Layer != attr.LayerDeployment || src.File == "" || src.Line == 0 {
		return src.String()
	}
	f := sp.Files[src.File]
	if f == nil {
		return src.String()
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return src.String()
	}
	for _, b := range body.Blocks {
		r := b.Range()
		if b.Type == "role" && len(b.Labels) == 1 && r.Start.Line <= src.Line && src.Line <= r.End.Line {
			return fmt.Sprintf("role block %s (%s:%d)", b.Labels[0], src.File, src.Line)
		}
	}
	return src.String()
}

// valueText prints a value for people: secrets redacted, strings quoted.
func valueText(v attr.Value, t reflect.Type) string {
	if v.Secret() || attr.IsSecret(v.Any()) {
		return attr.Redacted
	}
	if s, ok := v.Any().(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%v", v.Any())
}

func (c *command) destroy(ctx context.Context) int {
	s, code := c.load(ctx)
	if code != ExitOK {
		return code
	}
	defer s.close()
	if !c.yes {
		if nodes := s.dep.Nodes(); s.prov != nil && len(nodes) > 0 {
			var names []string
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			slices.SortFunc(names, problems.Compare)
			fmt.Fprintf(c.errw, "destroy would delete %d node(s) of provider %s: %s\n", len(names), s.prov.Name(), strings.Join(names, ", "))
		}
		fmt.Fprintf(c.errw, "destroy would forget the state of deployment %s in %s (its journal, claims and identity)\nrun it with -yes to do it: %s\n",
			s.spec.Name, s.st.where, c.commandLine("destroy", "-yes"))
		return ExitUsage
	}
	res, err := s.dep.Destroy(ctx)
	if len(res.Nodes) > 0 {
		fmt.Fprintf(c.out, "deleted %d node(s): %s\n", len(res.Nodes), strings.Join(res.Nodes, ", "))
	}
	if err != nil {
		return c.failErr("", err)
	}
	if res.TornDown {
		fmt.Fprintf(c.out, "removed what provider %s made for the deployment (no node is left in it)\n", s.prov.Name())
	}
	fmt.Fprintf(c.out, "destroyed %s: %d state record(s) removed\n", s.spec.Name, res.Records)
	return ExitOK
}

// sharedState reports whether the state store may be shared with other
// controllers (etcd), in which case apply claims node-roles.
func (c *command) sharedState() bool {
	return strings.HasPrefix(c.state, "etcd://") || strings.HasPrefix(c.state, "etcds://")
}

// controllerName identifies this process in claims and locks.
func controllerName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// removalWhy explains a node-role of a node that left, if id is one.
func removalWhy(w io.Writer, p *graph.Plan, id string) bool {
	for _, rm := range p.Removals {
		for _, s := range rm.Steps {
			if s.ID != id {
				continue
			}
			action, why, _ := strings.Cut(s.Reason, ": ")
			fmt.Fprintf(w, "%s: %s — %s\n", s.ID, action, why)
			fmt.Fprintf(w, "  node %s is removed: its node-roles are undone in this order, then it is deleted:\n", rm.Node)
			for _, o := range rm.Steps {
				a, _, _ := strings.Cut(o.Reason, ": ")
				fmt.Fprintf(w, "    %s %s (last %s)\n", a, o.ID, o.Last)
			}
			return true
		}
	}
	return false
}
