package spec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/problems"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// PoolLabel is the label every node of a spec's pool carries, naming the
// pool.
const PoolLabel = "mason.pool"

// NodeSpecs returns what to ask the provider for: one NodeSpec per node of
// every pool, with a stable ID derived from the deployment and node names.
func (s *Spec) NodeSpecs() []provider.NodeSpec {
	var out []provider.NodeSpec
	seen := map[string]bool{}
	for _, p := range s.Pools {
		for _, n := range p.Nodes {
			if seen[n] {
				continue
			}
			seen[n] = true
			labels := map[string]string{PoolLabel: p.Name}
			for k, v := range p.Labels {
				labels[k] = v
			}
			out = append(out, provider.NodeSpec{ID: s.NodeID(n), Name: n, Labels: labels, Flavor: p.Flavor, Image: p.Image})
		}
	}
	return out
}

// NodeID is the provider ID of the spec's node called name.
func (s *Spec) NodeID(name string) string { return provider.StableID(s.Name, name) }

// Deployment builds the graph deployment the spec describes. nodes are the
// machines the provider holds, matched to the spec's nodes by name; a node
// the provider does not have yet is represented by its name alone (enough
// to plan, not to run). Attribute values carry the spec's file and line as
// their provenance.
func (s *Spec) Deployment(nodes []*provider.Node) (*graph.Deployment, error) {
	d := graph.NewDeployment(s.Name)
	// Mistakes, each once (a pool's value is set on each of its nodes),
	// flat.
	var errs []error
	seen := map[string]bool{}
	fail := func(err error) {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	keys := make([]attr.Decl, 0, len(s.reg.keys))
	for _, name := range sortedKeys(s.reg.keys) {
		keys = append(keys, s.reg.keys[name])
	}
	if err := d.Attrs().Declare(keys...); err != nil {
		fail(fmt.Errorf("spec: declaring the registry's attribute keys: %w", err))
	}
	byName := map[string]*provider.Node{}
	for _, n := range nodes {
		if n != nil {
			byName[n.Name] = n
		}
	}
	pools := map[string]*graph.Pool{}
	made := map[string]*provider.Node{}
	for _, p := range s.Pools {
		gp := d.Pool(p.Name)
		pools[p.Name] = gp
		for _, name := range p.Nodes {
			n := made[name]
			if n == nil {
				n = byName[name]
				if n == nil {
					labels := map[string]string{PoolLabel: p.Name}
					for k, v := range p.Labels {
						labels[k] = v
					}
					n = &provider.Node{ID: s.NodeID(name), Name: name, Labels: labels, Flavor: p.Flavor, Image: p.Image}
				}
				made[name] = n
			}
			gp.Add(n)
			for _, v := range p.values {
				src := attr.FromSpec(attr.LayerNode, v.rng.Filename, v.rng.Start.Line)
				src.Node = name
				if err := d.NodeAttrs(name).SetAny(v.name, v.v, src); err != nil {
					fail(fmt.Errorf("%s: %w", rangeText(v.rng), err))
				}
			}
		}
	}
	for _, v := range s.values {
		if err := d.Attrs().SetAny(v.name, v.v, attr.FromSpec(attr.LayerDeployment, v.rng.Filename, v.rng.Start.Line)); err != nil {
			fail(fmt.Errorf("%s: %w", rangeText(v.rng), err))
		}
	}
	for _, rb := range s.Roles {
		if rb.Def.Meta().Scope == role.ScopeService {
			d.Bind(nil, rb.Def)
		} else {
			for _, pn := range rb.On {
				d.Bind(pools[pn], rb.Def)
			}
		}
		if rb.Rollout != nil {
			d.SetRollout(rb.Name, *rb.Rollout)
		}
		for _, r := range rb.Refs {
			if r.Attr != "" {
				// The graph wires r.Attr from this output (a no-op when its
				// tag already publishes it so).
				d.PublishOutput(r.Producer, r.Output, r.Attr)
			}
		}
	}
	return d, errors.Join(errs...)
}

// OpenServices configures the spec's service blocks through the registry's
// ServiceFuncs and returns the registry roles reach them in.
func (s *Spec) OpenServices(ctx context.Context) (*role.Services, error) {
	svcs := role.NewServices()
	for _, b := range s.Services {
		f := s.reg.services[b.Name]
		if f == nil {
			return nil, fmt.Errorf("spec: %s: no service %q is registered", rangeText(b.Range), b.Name)
		}
		if err := f(ctx, b.Settings, svcs); err != nil {
			return nil, fmt.Errorf("spec: service %q (%s): %w", b.Name, rangeText(b.Range), err)
		}
	}
	return svcs, nil
}

// OpenProvider opens the spec's provider; it returns nil, nil when the spec
// has no provider block.
func (s *Spec) OpenProvider(ctx context.Context) (*provider.Provider, error) {
	if s.Provider == nil {
		return nil, nil
	}
	f := s.reg.providers[s.Provider.Name]
	if f == nil {
		return nil, fmt.Errorf("spec: %s: no provider %q is registered", rangeText(s.Provider.Range), s.Provider.Name)
	}
	p, err := f(ctx, s.Provider.Settings)
	if err != nil {
		return nil, fmt.Errorf("spec: provider %q (%s): %w", s.Provider.Name, rangeText(s.Provider.Range), err)
	}
	return p, nil
}

// Role returns the role block binding name.
func (s *Spec) Role(name string) *RoleBlock {
	for _, rb := range s.Roles {
		if rb.Name == name {
			return rb
		}
	}
	return nil
}

// Diagnostics turns errors from graph.NewPlan into diagnostics at the
// role blocks they concern, one per distinct problem: a cycle at the first
// role block on it, told in the spec's words; a wiring mistake at the
// consuming role's block, once for all the nodes it happened on. Errors
// it cannot place are reported without a location.
func (s *Spec) Diagnostics(err error) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, c := range problems.Causes(err, nil) {
		e := c.Errs[0]
		var ce *graph.CycleError
		var be *role.BindError
		switch {
		case errors.As(e, &ce):
			var rng *hcl.Range
			for _, id := range ce.Path {
				r, _, _ := strings.Cut(id, "@")
				if rb := s.Role(r); rb != nil {
					rng = rb.Range.Ptr()
					break
				}
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Dependency cycle",
				Detail: s.cycleDetail(ce), Subject: rng})
		case errors.As(e, &be):
			if len(c.Nodes) > 1 {
				be = problems.OnNodes(be, c.Nodes)
			}
			var rng *hcl.Range
			if rb := s.Role(be.Role); rb != nil {
				rng = rb.Range.Ptr()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Input cannot be wired",
				Detail: be.Error() + ". Bind a role that produces it, set the attribute in attrs, or fix the role's input in Go.", Subject: rng})
		default:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Deployment is not valid",
				Detail: strings.TrimPrefix(c.Text, "graph: ")})
		}
	}
	return diags
}

// cycleDetail tells a cycle in the spec's words: each node-role on it and
// why it waits for the next — a reference in the spec, an input the
// role's Go code wires by type, an attribute the next one publishes, or a
// requirement of the role's Go code.
func (s *Spec) cycleDetail(ce *graph.CycleError) string {
	var steps []string
	for k := 0; k+1 < len(ce.Path); k++ {
		from, to := ce.Path[k], ce.Path[k+1]
		fr, _, _ := strings.Cut(from, "@")
		tr, _, _ := strings.Cut(to, "@")
		why := s.waitReasons(fr, tr)
		if len(why) == 0 {
			why = []string{"it needs its output"}
		}
		steps = append(steps, from+" waits for "+to+" ("+strings.Join(why, "; ")+")")
	}
	return fmt.Sprintf("%s: %s. Roles on a cycle can never start; remove one of these references, or change one role so it does not need the other.",
		strings.Join(ce.Path, " → "), strings.Join(steps, ", and "))
}

// waitReasons says why role block consumer waits for role producer.
func (s *Spec) waitReasons(consumer, producer string) []string {
	rb, pb := s.Role(consumer), s.Role(producer)
	if rb == nil || pb == nil {
		return nil
	}
	var why []string
	refs := map[string]bool{}
	for _, ref := range rb.Refs {
		if ref.Producer == producer {
			refs[ref.Input] = true
			why = append(why, fmt.Sprintf("%s = %s at %s", ref.Input, s.source(ref.Range), rangeText(ref.Range)))
		}
	}
	published := map[string]bool{}
	for _, p := range pb.Def.Publishes() {
		published[p.Attr] = true
	}
	for _, in := range rb.Def.Inputs() {
		if refs[in.Field] {
			continue
		}
		switch {
		case in.Kind.Wired() && in.Type == pb.Def.Out() && (in.Role == "" || in.Role == producer):
			why = append(why, fmt.Sprintf("its input %s takes %s's output: the role's Go code wires it by type", in.Describe(), producer))
		case in.Kind == role.InputAttr && published[in.Attr]:
			why = append(why, fmt.Sprintf("its input %s reads attribute %q, which %s publishes", in.Field, in.Attr, producer))
		}
	}
	for _, req := range rb.Def.Meta().Requires {
		if req == producer {
			why = append(why, fmt.Sprintf("role %s requires role %s in its Go code", consumer, producer))
		}
	}
	return why
}

// source is the spec's text in rng, or "the reference" when the file is
// not at hand.
func (s *Spec) source(rng hcl.Range) string {
	if f := s.Files[rng.Filename]; f != nil && rng.Start.Byte < rng.End.Byte && rng.End.Byte <= len(f.Bytes) {
		return string(f.Bytes[rng.Start.Byte:rng.End.Byte])
	}
	return "the reference"
}

// Format prints diagnostics one a line, "file:line:col: error: summary:
// detail", for logs and golden tests; hcl.NewDiagnosticTextWriter shows
// them with the source.
func Format(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "%s: %s", sev, d.Summary)
		if d.Detail != "" {
			fmt.Fprintf(&b, ": %s", d.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteDiagnostics writes diagnostics for people: each as
// "file:line:col: error: summary: detail" followed by the source line
// and a marker under the range, when the file is among files.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File) error {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(Format(hcl.Diagnostics{d}))
		if d.Subject == nil {
			continue
		}
		f := files[d.Subject.Filename]
		if f == nil {
			continue
		}
		lines := strings.Split(string(f.Bytes), "\n")
		ln := d.Subject.Start.Line
		if ln < 1 || ln > len(lines) {
			continue
		}
		line := strings.TrimRight(lines[ln-1], "\r")
		fmt.Fprintf(&b, "  %4d | %s\n", ln, line)
		col := d.Subject.Start.Column
		width := 1
		if d.Subject.End.Line == ln && d.Subject.End.Column > col {
			width = d.Subject.End.Column - col
		}
		if col >= 1 && col-1 <= len(line) {
			pad := strings.Map(func(r rune) rune {
				if r == '\t' {
					return '\t'
				}
				return ' '
			}, line[:col-1])
			fmt.Fprintf(&b, "       | %s%s\n", pad, strings.Repeat("^", width))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
