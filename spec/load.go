package spec

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// MaxPoolNodes bounds the nodes of one pool.
const MaxPoolNodes = 10000

// File is one spec file: its name (for diagnostics) and its text.
type File struct {
	Name string
	Src  []byte
}

// Options are the values a spec is loaded with from outside it.
type Options struct {
	// Vars are -var flags: name to text. A variable of type string takes
	// the text as it is; other types parse it as an HCL expression.
	Vars map[string]string
	// VarFiles hold `name = value` lines.
	VarFiles []File
	// Env is the environment (os.Environ()); MASON_VAR_name=value sets a
	// variable. nil reads none.
	Env []string
	// Deployment names the deployment when the spec has no `deployment`
	// attribute.
	Deployment string
}

// Spec is a loaded, checked deployment spec. Build a graph.Deployment from
// it with Deployment; its provider and services are opened by the front
// end.
type Spec struct {
	// Name is the deployment's name.
	Name string
	// Provider is the provider block, nil when the spec has none.
	Provider *Block
	// Services are the service blocks, in spec order.
	Services []*Block
	// Pools and Roles are in spec order.
	Pools []*Pool
	Roles []*RoleBlock
	// Vars are the variables' values.
	Vars map[string]cty.Value
	// Files are the parsed files, for hcl.NewDiagnosticTextWriter.
	Files map[string]*hcl.File

	values []value // deployment layer: top-level and role-block attrs
	reg    *Registry
}

// Block is a provider or service block: a registered name and settings.
type Block struct {
	Name     string
	Settings Settings
	Range    hcl.Range
}

// Pool is a named group of nodes.
type Pool struct {
	Name   string
	Nodes  []string // node names, in order
	Labels map[string]string
	Flavor provider.Flavor
	Image  provider.Image
	Range  hcl.Range
	values []value // node layer, for each node of the pool
}

// RoleBlock binds a registered role to pools.
type RoleBlock struct {
	Name    string
	Def     *role.Def
	On      []string // pool names
	Rollout *graph.Rollout
	// Refs are the references to other roles' outputs in this block.
	Refs  []Ref
	Range hcl.Range
}

// Ref is a reference from one role's input to another role's output:
// `role.etcd-ca.output.cert_pem` or `role.etcd-peer-url.outputs`.
type Ref struct {
	// Consumer and Input name the role block and its input field.
	Consumer, Input string
	// Producer and Output name the referenced role and output field
	// (Output is "" for a whole output).
	Producer, Output string
	// Attr is the attribute the graph wires it through, for attribute
	// inputs; "" for role.Same/One/All inputs, wired by type.
	Attr  string
	Range hcl.Range
}

// value is one attribute value written in the spec.
type value struct {
	name string
	v    any
	rng  hcl.Range
}

var rootSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "deployment"}, {Name: "attrs"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "provider", LabelNames: []string{"name"}},
		{Type: "service", LabelNames: []string{"name"}},
		{Type: "pool", LabelNames: []string{"name"}},
		{Type: "role", LabelNames: []string{"name"}},
	},
}

var poolSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "count"}, {Name: "nodes"}, {Name: "labels"}, {Name: "flavor"}, {Name: "image"}, {Name: "attrs"}},
}

var roleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "on"}, {Name: "attrs"}, {Name: "inputs"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "rollout"}},
}

var rolloutSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max_failed"}, {Name: "max_failed_fraction"}, {Name: "batch"}, {Name: "batch_percent"}},
}

func errDiag(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// Load parses and checks spec files against the registry. It reports
// every problem it finds, each an hcl.Diagnostic at the source; the Spec
// is usable only when the diagnostics hold no error.
func Load(reg *Registry, files []File, opts Options) (s *Spec, diags hcl.Diagnostics) {
	s = &Spec{Files: map[string]*hcl.File{}, reg: reg, Vars: map[string]cty.Value{}}
	for _, err := range reg.err {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid role registration", Detail: err.Error() + ". Fix the role in Go."})
	}
	var parsed []*hcl.File
	for _, f := range files {
		hf, d := hclsyntax.ParseConfig(f.Src, f.Name, hcl.InitialPos)
		diags = append(diags, d...)
		if hf != nil {
			s.Files[f.Name] = hf
			parsed = append(parsed, hf)
		}
	}
	for _, f := range opts.VarFiles {
		if hf, _ := hclsyntax.ParseConfig(f.Src, f.Name, hcl.InitialPos); hf != nil {
			s.Files[f.Name] = hf
		}
	}
	if diags.HasErrors() {
		return s, diags
	}
	content, d := contentOf(hcl.MergeFiles(parsed), rootSchema, "a spec")
	diags = append(diags, d...)

	// Variables first: everything else may use them.
	vars := map[string]*variable{}
	for _, b := range content.Blocks.OfType("variable") {
		v, d := decodeVariable(b)
		diags = append(diags, d...)
		if old, dup := vars[v.name]; dup {
			diags = append(diags, errDiag(b.DefRange, "Duplicate variable", fmt.Sprintf("Variable %q is already declared at %s; rename or remove one of them.", v.name, rangeText(old.rng))))
			continue
		}
		vars[v.name] = v
	}
	vals, d := resolveVariables(vars, opts)
	diags = append(diags, d...)
	s.Vars = vals
	l := &loader{s: s, reg: reg, funcs: functions(), roles: map[string]*RoleBlock{}, pools: map[string]*Pool{}}
	l.vars = cty.EmptyObjectVal
	if len(vals) > 0 {
		l.vars = cty.ObjectVal(vals)
	}

	// Deployment name.
	s.Name = opts.Deployment
	if a, ok := content.Attributes["deployment"]; ok {
		if v, ok := l.evalString(a.Expr, &diags); ok {
			s.Name = v
		}
	}
	if s.Name == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing deployment name",
			Detail: "Name the deployment with `deployment = \"NAME\"` at the top of the spec (the name keys its state).", Subject: firstFileRange(parsed)})
	}

	for _, b := range content.Blocks.OfType("provider") {
		if s.Provider != nil {
			diags = append(diags, errDiag(b.DefRange, "Duplicate provider", fmt.Sprintf("A spec has one provider; one is already declared at %s.", rangeText(s.Provider.Range))))
			continue
		}
		if _, ok := reg.providers[b.Labels[0]]; !ok {
			diags = append(diags, errDiag(b.LabelRanges[0], "Unknown provider", fmt.Sprintf("This program has no provider %q; it has: %s.%s Use one of them, or register it in Go with Registry.Provider.", b.Labels[0], listNames(sortedKeys(reg.providers)), suggest(b.Labels[0], sortedKeys(reg.providers)))))
		}
		s.Provider = &Block{Name: b.Labels[0], Settings: l.settings(b.Body, &diags), Range: b.DefRange}
	}
	seenSvc := map[string]hcl.Range{}
	for _, b := range content.Blocks.OfType("service") {
		if old, dup := seenSvc[b.Labels[0]]; dup {
			diags = append(diags, errDiag(b.DefRange, "Duplicate service", fmt.Sprintf("Service %q is already configured at %s.", b.Labels[0], rangeText(old))))
			continue
		}
		seenSvc[b.Labels[0]] = b.DefRange
		if _, ok := reg.services[b.Labels[0]]; !ok {
			diags = append(diags, errDiag(b.LabelRanges[0], "Unknown service", fmt.Sprintf("This program has no service %q; it has: %s.%s Use one of them, or register it in Go with Registry.Service.", b.Labels[0], listNames(sortedKeys(reg.services)), suggest(b.Labels[0], sortedKeys(reg.services)))))
		}
		s.Services = append(s.Services, &Block{Name: b.Labels[0], Settings: l.settings(b.Body, &diags), Range: b.DefRange})
	}

	for _, b := range content.Blocks.OfType("pool") {
		l.pool(b, &diags)
	}
	l.poolObjs()
	// Every role block's pools are read before any reference is checked,
	// so a reference does not depend on the order of blocks or files.
	for _, b := range content.Blocks.OfType("role") {
		l.roleHeader(b, &diags)
	}
	for _, rb := range s.Roles {
		l.roleOn(rb, &diags)
	}
	for _, rb := range s.Roles {
		l.roleBody(rb, &diags)
	}
	if a, ok := content.Attributes["attrs"]; ok {
		s.values = append(s.values, l.attrs(a.Expr, nil, &diags)...)
	}
	l.checkNodes(&diags)
	l.checkCycles(&diags)
	l.checkPublishers(&diags)
	sortDiags(diags)
	return s, diags
}

// sortDiags orders diagnostics by file and position, so they read like
// the spec.
func sortDiags(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

func firstFileRange(files []*hcl.File) *hcl.Range {
	for _, f := range files {
		if b, ok := f.Body.(*hclsyntax.Body); ok {
			r := hcl.Range{Filename: b.SrcRange.Filename, Start: hcl.InitialPos, End: hcl.InitialPos}
			return &r
		}
	}
	return nil
}

type loader struct {
	s      *Spec
	reg    *Registry
	funcs  map[string]function.Function
	vars   cty.Value
	pools  map[string]*Pool
	roles  map[string]*RoleBlock
	bodies map[*RoleBlock]*hcl.BodyContent
	// nodes are the node-roles each role block makes, as producers and
	// consumers for role.Input.Resolve (see wiring.go).
	nodes map[*RoleBlock]*blockNodes
	pobj  cty.Value
	// sensitive says whether the last value eval returned came from a
	// sensitive variable.
	sensitive bool
}

func (l *loader) ctx() *hcl.EvalContext {
	v := map[string]cty.Value{"var": l.vars}
	if l.pobj != cty.NilVal {
		v["pool"] = l.pobj
	}
	return &hcl.EvalContext{Variables: v, Functions: l.funcs}
}

// eval evaluates expr; references to role outputs are refused here (they
// are allowed only as attrs and inputs of a role block).
func (l *loader) eval(expr hcl.Expression, diags *hcl.Diagnostics) (cty.Value, bool) {
	for _, t := range expr.Variables() {
		switch t.RootName() {
		case "role":
			*diags = append(*diags, errDiag(t.SourceRange(), "Reference to a role output here",
				"Role outputs are known only when the role has run; reference them only as a whole value in a role block's attrs or inputs."))
			return cty.NilVal, false
		case "var":
			if len(t) > 1 {
				if a, ok := t[1].(hcl.TraverseAttr); ok && !l.vars.Type().HasAttribute(a.Name) {
					known := []string{}
					for n := range l.vars.Type().AttributeTypes() {
						known = append(known, n)
					}
					*diags = append(*diags, errDiag(t.SourceRange(), "Undeclared variable",
						fmt.Sprintf("There is no variable %q.%s Declare it with `variable %q { type = string }`, or use one of: %s.", a.Name, suggest(a.Name, known), a.Name, listNames(known))))
					return cty.NilVal, false
				}
			}
		case "pool":
			if l.pobj == cty.NilVal {
				*diags = append(*diags, errDiag(t.SourceRange(), "Reference to a pool here",
					"Pools can be referenced from role blocks and attrs, not from variables, providers, services or other pools."))
				return cty.NilVal, false
			}
			if len(t) > 1 {
				if a, ok := t[1].(hcl.TraverseAttr); ok && l.pools[a.Name] == nil {
					*diags = append(*diags, errDiag(t.SourceRange(), "Unknown pool",
						fmt.Sprintf("There is no pool %q; declare it with `pool %q { count = N }`, or use one of: %s.%s", a.Name, a.Name, listNames(sortedKeys(l.pools)), suggest(a.Name, sortedKeys(l.pools)))))
					return cty.NilVal, false
				}
			}
		}
	}
	v, d := expr.Value(l.ctx())
	*diags = append(*diags, d...)
	if d.HasErrors() {
		return cty.NilVal, false
	}
	v, marks := v.UnmarkDeep()
	l.sensitive = len(marks) > 0
	if !v.IsWhollyKnown() {
		// Only a variable that failed to resolve makes a value unknown;
		// that was already reported.
		return cty.NilVal, false
	}
	return v, true
}

func (l *loader) evalString(expr hcl.Expression, diags *hcl.Diagnostics) (string, bool) {
	v, ok := l.eval(expr, diags)
	if !ok {
		return "", false
	}
	if v.Type() != cty.String || v.IsNull() {
		*diags = append(*diags, errDiag(expr.Range(), "Expected a string", fmt.Sprintf("This value must be a string, but it is %s.", ctyTypeWords(v.Type()))))
		return "", false
	}
	return v.AsString(), true
}

func (l *loader) evalInt(expr hcl.Expression, what string, lo int, diags *hcl.Diagnostics) (int, bool) {
	v, ok := l.eval(expr, diags)
	if !ok {
		return 0, false
	}
	g, err := toGo(v, reflect.TypeFor[int]())
	if err == nil && int(g.Int()) < lo {
		err = fmt.Errorf("it is %d, and must be at least %d", g.Int(), lo)
	}
	if err != nil {
		*diags = append(*diags, errDiag(expr.Range(), "Invalid "+what, fmt.Sprintf("%s must be a whole number: %s.", what, err)))
		return 0, false
	}
	return int(g.Int()), true
}

func (l *loader) settings(body hcl.Body, diags *hcl.Diagnostics) Settings {
	attrs, d := body.JustAttributes()
	*diags = append(*diags, d...)
	out := Settings{}
	for name, a := range attrs {
		if v, ok := l.eval(a.Expr, diags); ok {
			out[name] = ctyToAny(v)
		}
	}
	return out
}

func (l *loader) pool(b *hcl.Block, diags *hcl.Diagnostics) {
	name := b.Labels[0]
	if old, dup := l.pools[name]; dup {
		*diags = append(*diags, errDiag(b.DefRange, "Duplicate pool", fmt.Sprintf("Pool %q is already declared at %s; rename or merge them.", name, rangeText(old.Range))))
		return
	}
	if !hclsyntax.ValidIdentifier(name) {
		*diags = append(*diags, errDiag(b.LabelRanges[0], "Invalid pool name", fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter.", name)))
		return
	}
	p := &Pool{Name: name, Range: b.DefRange}
	l.pools[name] = p
	l.s.Pools = append(l.s.Pools, p)
	content, d := contentOf(b.Body, poolSchema, "a pool block")
	*diags = append(*diags, d...)
	count := -1
	if a, ok := content.Attributes["count"]; ok {
		if n, ok := l.evalInt(a.Expr, "count", 0, diags); ok {
			if n > MaxPoolNodes {
				*diags = append(*diags, errDiag(a.Expr.Range(), "Invalid count",
					fmt.Sprintf("A pool holds at most %d nodes; split pool %q into several pools.", MaxPoolNodes, name)))
				n = 0
			}
			count = n
		}
	}
	if a, ok := content.Attributes["nodes"]; ok {
		v, ok := l.eval(a.Expr, diags)
		if ok {
			g, err := toGo(v, reflect.TypeFor[[]string]())
			if err != nil {
				*diags = append(*diags, errDiag(a.Expr.Range(), "Invalid nodes", "nodes lists the pool's node names: "+err.Error()+"."))
			} else {
				p.Nodes = g.Interface().([]string)
				if count >= 0 && count != len(p.Nodes) {
					*diags = append(*diags, errDiag(a.Expr.Range(), "Pool count and nodes disagree",
						fmt.Sprintf("Pool %q has count = %d but lists %d nodes; give one of them.", name, count, len(p.Nodes))))
				}
			}
		}
	} else if count >= 0 {
		for i := 1; i <= count; i++ {
			p.Nodes = append(p.Nodes, fmt.Sprintf("%s-%d", name, i))
		}
	} else if _, ok := content.Attributes["count"]; !ok {
		*diags = append(*diags, errDiag(b.DefRange, "Pool without nodes", fmt.Sprintf("Say how many nodes pool %q has (`count = 3`) or name them (`nodes = [\"n1\", \"n2\"]`).", name)))
	}
	for _, n := range p.Nodes {
		if err := (provider.NodeSpec{ID: n}).Validate(); err != nil {
			r := b.DefRange
			if a, ok := content.Attributes["nodes"]; ok {
				r = a.Expr.Range()
			}
			*diags = append(*diags, errDiag(r, "Invalid node name", fmt.Sprintf("Node name %q: %v.", n, err)))
		}
	}
	if a, ok := content.Attributes["labels"]; ok {
		if v, ok := l.eval(a.Expr, diags); ok {
			m, err := ctyStringMap(v)
			if err != nil {
				*diags = append(*diags, errDiag(a.Expr.Range(), "Invalid labels", "labels is a map of strings: "+err.Error()+"."))
			}
			p.Labels = m
		}
	}
	if a, ok := content.Attributes["flavor"]; ok {
		if v, ok := l.eval(a.Expr, diags); ok {
			var fl struct {
				VCPUs, RAMMiB, DiskGiB int
			}
			m, err := toGo(v, reflect.TypeFor[map[string]int]())
			if err == nil {
				for k, n := range m.Interface().(map[string]int) {
					switch k {
					case "vcpus":
						fl.VCPUs = n
					case "ram_mib":
						fl.RAMMiB = n
					case "disk_gib":
						fl.DiskGiB = n
					default:
						err = fmt.Errorf("unknown key %q; use vcpus, ram_mib and disk_gib", k)
					}
				}
			}
			if err != nil {
				*diags = append(*diags, errDiag(a.Expr.Range(), "Invalid flavor", "flavor is { vcpus = 2, ram_mib = 2048, disk_gib = 20 }: "+err.Error()+"."))
			}
			p.Flavor = provider.Flavor{VCPUs: fl.VCPUs, RAMMiB: fl.RAMMiB, DiskGiB: fl.DiskGiB}
		}
	}
	if a, ok := content.Attributes["image"]; ok {
		if v, ok := l.evalString(a.Expr, diags); ok {
			p.Image = provider.Image{Name: v}
		}
	}
	if a, ok := content.Attributes["attrs"]; ok {
		p.values = l.attrsForPool(a.Expr, diags)
	}
}

// poolObjs makes pool.<name> available to expressions: name, count, nodes.
func (l *loader) poolObjs() {
	m := map[string]cty.Value{}
	for _, p := range l.s.Pools {
		nodes := cty.ListValEmpty(cty.String)
		if len(p.Nodes) > 0 {
			vs := make([]cty.Value, len(p.Nodes))
			for i, n := range p.Nodes {
				vs[i] = cty.StringVal(n)
			}
			nodes = cty.ListVal(vs)
		}
		m[p.Name] = cty.ObjectVal(map[string]cty.Value{
			"name": cty.StringVal(p.Name), "count": cty.NumberIntVal(int64(len(p.Nodes))), "nodes": nodes,
		})
	}
	l.pobj = cty.ObjectVal(m)
	if len(m) == 0 {
		l.pobj = cty.EmptyObjectVal
	}
}

func (l *loader) roleHeader(b *hcl.Block, diags *hcl.Diagnostics) {
	name := b.Labels[0]
	if old, dup := l.roles[name]; dup {
		*diags = append(*diags, errDiag(b.DefRange, "Duplicate role block", fmt.Sprintf("Role %q is already bound at %s; list all its pools in one block: on = [pool.a, pool.b].", name, rangeText(old.Range))))
		return
	}
	def, ok := l.reg.roles[name]
	if !ok {
		*diags = append(*diags, errDiag(b.LabelRanges[0], "Unknown role",
			fmt.Sprintf("This program has no role %q.%s Registered roles: %s.", name, suggest(name, l.reg.RoleNames()), listNames(l.reg.RoleNames()))))
		return
	}
	rb := &RoleBlock{Name: name, Def: def, Range: b.DefRange}
	l.roles[name] = rb
	content, d := contentOf(b.Body, roleSchema, "a role block")
	*diags = append(*diags, d...)
	if l.bodies == nil {
		l.bodies = map[*RoleBlock]*hcl.BodyContent{}
	}
	l.bodies[rb] = content
	l.s.Roles = append(l.s.Roles, rb)
}

// roleOn reads a role block's pools (`on`).
func (l *loader) roleOn(rb *RoleBlock, diags *hcl.Diagnostics) {
	content := l.bodies[rb]
	scope := rb.Def.Meta().Scope
	if a, ok := content.Attributes["on"]; ok {
		if scope == role.ScopeService {
			*diags = append(*diags, errDiag(a.NameRange, "Pools for a service role",
				fmt.Sprintf("Role %q has service scope: it runs once for the deployment, on no node. Remove `on`.", rb.Name)))
		} else if v, ok := l.eval(a.Expr, diags); ok {
			rb.On = l.poolNames(v, a.Expr.Range(), diags)
			seen := map[string]string{}
		check:
			for _, pn := range rb.On {
				p := l.pools[pn]
				if p == nil {
					continue
				}
				for _, n := range p.Nodes {
					if other, dup := seen[n]; dup && scope == role.ScopeNode {
						*diags = append(*diags, errDiag(a.Expr.Range(), "Role bound twice to a node",
							fmt.Sprintf("Node %s is in pool %q and pool %q, so role %q would be bound to it twice. List each pool once, and a node in only one of the role's pools.", n, other, pn, rb.Name)))
						break check
					}
					seen[n] = pn
				}
			}
		}
	} else if scope != role.ScopeService {
		*diags = append(*diags, errDiag(rb.Range, "Missing pools",
			fmt.Sprintf("Role %q has %s scope and needs nodes: add `on = [pool.NAME]`.", rb.Name, scope)))
	}
}

// roleBody reads the rest of a role block: attribute values, references
// and its rollout. Every block's pools are known by then.
func (l *loader) roleBody(rb *RoleBlock, diags *hcl.Diagnostics) {
	content := l.bodies[rb]
	if a, ok := content.Attributes["attrs"]; ok {
		l.s.values = append(l.s.values, l.attrs(a.Expr, rb, diags)...)
	}
	if a, ok := content.Attributes["inputs"]; ok {
		l.inputs(a.Expr, rb, diags)
	}
	for _, b := range content.Blocks.OfType("rollout") {
		if rb.Rollout != nil {
			*diags = append(*diags, errDiag(b.DefRange, "Duplicate rollout", "A role has one rollout block."))
			continue
		}
		rc, d := contentOf(b.Body, rolloutSchema, "a rollout block")
		*diags = append(*diags, d...)
		ro := graph.Rollout{}
		if a, ok := rc.Attributes["max_failed"]; ok {
			ro.MaxFailed, _ = l.evalInt(a.Expr, "max_failed", 0, diags)
		}
		if a, ok := rc.Attributes["batch"]; ok {
			ro.Batch, _ = l.evalInt(a.Expr, "batch", 0, diags)
		}
		if a, ok := rc.Attributes["batch_percent"]; ok {
			if n, ok := l.evalInt(a.Expr, "batch_percent", 0, diags); ok {
				if n > 100 {
					*diags = append(*diags, errDiag(a.Expr.Range(), "Invalid batch_percent", "batch_percent is a percentage from 0 to 100."))
				}
				ro.BatchPercent = n
			}
		}
		if a, ok := rc.Attributes["max_failed_fraction"]; ok {
			if v, ok := l.eval(a.Expr, diags); ok {
				g, err := toGo(v, reflect.TypeFor[float64]())
				if err == nil && (g.Float() < 0 || g.Float() > 1) {
					err = fmt.Errorf("it is %v", g.Float())
				}
				if err != nil {
					*diags = append(*diags, errDiag(a.Expr.Range(), "Invalid max_failed_fraction", "max_failed_fraction is a number from 0 to 1 (0.25: more than a quarter): "+err.Error()+"."))
				} else {
					ro.MaxFailedFraction = g.Float()
				}
			}
		}
		rb.Rollout = &ro
	}
}

// poolNames reads `on`: a list of pool objects (pool.NAME).
func (l *loader) poolNames(v cty.Value, rng hcl.Range, diags *hcl.Diagnostics) []string {
	ty := v.Type()
	if ty.IsObjectType() {
		v = cty.TupleVal([]cty.Value{v})
		ty = v.Type()
	}
	bad := func() []string {
		*diags = append(*diags, errDiag(rng, "Invalid pools", "`on` lists pools: on = [pool.members, pool.workers]."))
		return nil
	}
	if !(ty.IsListType() || ty.IsTupleType()) {
		return bad()
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if !e.Type().IsObjectType() || !e.Type().HasAttribute("name") || !e.Type().HasAttribute("nodes") {
			return bad()
		}
		out = append(out, e.GetAttr("name").AsString())
	}
	return out
}

// attrType finds the Go type of an attribute: the role's input reading it,
// else a declared key, else any registered role's input.
func (l *loader) attrType(name string, rb *RoleBlock) (reflect.Type, bool) {
	if rb != nil {
		for _, in := range rb.Def.Inputs() {
			if in.Kind == role.InputAttr && in.Attr == name {
				return in.Type, true
			}
		}
		return nil, false
	}
	if k, ok := l.reg.keys[name]; ok {
		return k.Type(), true
	}
	for _, rn := range l.reg.RoleNames() {
		for _, in := range l.reg.roles[rn].Inputs() {
			if in.Kind == role.InputAttr && in.Attr == name {
				return in.Type, true
			}
		}
	}
	return nil, false
}

func (l *loader) knownAttrs(rb *RoleBlock) []string {
	seen := map[string]bool{}
	if rb != nil {
		for _, in := range rb.Def.Inputs() {
			if in.Kind == role.InputAttr {
				seen[in.Attr] = true
			}
		}
		return sortedKeys(seen)
	}
	for k := range l.reg.keys {
		seen[k] = true
	}
	for _, d := range l.reg.roles {
		for _, in := range d.Inputs() {
			if in.Kind == role.InputAttr {
				seen[in.Attr] = true
			}
		}
	}
	return sortedKeys(seen)
}

func (l *loader) attrsForPool(expr hcl.Expression, diags *hcl.Diagnostics) []value {
	return l.attrs(expr, nil, diags)
}

// attrs reads an attrs map. Values are typed by the role's input (rb) or
// the declared key; references to role outputs are checked and recorded.
func (l *loader) attrs(expr hcl.Expression, rb *RoleBlock, diags *hcl.Diagnostics) []value {
	pairs, d := hcl.ExprMap(expr)
	*diags = append(*diags, d...)
	var out []value
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		key, ok := l.evalString(kv.Key, diags)
		if !ok {
			continue
		}
		if old, dup := seen[key]; dup {
			*diags = append(*diags, errDiag(kv.Key.Range(), "Duplicate attribute", fmt.Sprintf("Attribute %q is already set at %s.", key, rangeText(old))))
			continue
		}
		seen[key] = kv.Key.Range()
		t, ok := l.attrType(key, rb)
		if !ok {
			known := l.knownAttrs(rb)
			who := "No role of this program reads"
			if rb != nil {
				who = fmt.Sprintf("Role %q has no input reading", rb.Name)
			}
			*diags = append(*diags, errDiag(kv.Key.Range(), "Unknown attribute",
				fmt.Sprintf("%s attribute %q.%s Known attributes: %s.", who, key, suggest(key, known), listNames(known))))
			continue
		}
		if isRoleRef(kv.Value) {
			if rb == nil {
				*diags = append(*diags, errDiag(kv.Value.Range(), "Reference to a role output here",
					"Set attributes from role outputs inside the consuming role's block, so the wiring has a consumer: role \"NAME\" { attrs = { ... } }."))
				continue
			}
			l.attrRef(kv.Value, rb, key, t, diags)
			continue
		}
		v, ok := l.eval(kv.Value, diags)
		if !ok {
			continue
		}
		sensitive := l.sensitive
		g, err := toGo(v, t)
		if err != nil {
			*diags = append(*diags, errDiag(kv.Value.Range(), "Type mismatch",
				fmt.Sprintf("Attribute %q is a Go %v: %s.", key, t, err)))
			continue
		}
		if sensitive {
			var ok bool
			if g, ok = l.conceal(key, g); !ok {
				*diags = append(*diags, errDiag(kv.Value.Range(), "Sensitive value in a plain attribute",
					fmt.Sprintf("This value comes from a sensitive variable, but attribute %q (a Go %v) is not secret, so plans and `why` would print it. Make the role's field an attr.Secret[%v] or declare the key with AsSecret(), or drop `sensitive` from the variable.", key, t, t)))
				continue
			}
		}
		if k, ok := l.reg.keys[key]; ok {
			if err := k.CheckValue(g.Interface()); err != nil {
				*diags = append(*diags, errDiag(kv.Value.Range(), "Invalid attribute value", fmt.Sprintf("Attribute %q: %v.", key, err)))
				continue
			}
		}
		out = append(out, value{name: key, v: g.Interface(), rng: kv.Value.Range()})
	}
	return out
}

func isRoleRef(expr hcl.Expression) bool {
	for _, t := range expr.Variables() {
		if t.RootName() == "role" {
			return true
		}
	}
	return false
}

// parseRef reads role.R.output[.F] or role.R.outputs[*][.F].
func (l *loader) parseRef(expr hcl.Expression, diags *hcl.Diagnostics) (prod *RoleBlock, kind, field string, ok bool) {
	var tr hcl.Traversal
	splat := false
	if se, isSplat := expr.(*hclsyntax.SplatExpr); isSplat {
		src, d := hcl.AbsTraversalForExpr(se.Source)
		if d.HasErrors() {
			goto bad
		}
		tr = src
		splat = true
		switch each := se.Each.(type) {
		case *hclsyntax.AnonSymbolExpr:
		case *hclsyntax.RelativeTraversalExpr:
			if _, ok := each.Source.(*hclsyntax.AnonSymbolExpr); !ok {
				goto bad
			}
			tr = append(tr, each.Traversal...)
		default:
			goto bad
		}
	} else {
		var d hcl.Diagnostics
		tr, d = hcl.AbsTraversalForExpr(expr)
		if d.HasErrors() {
			goto bad
		}
	}
	{
		names := make([]string, 0, len(tr))
		for i, st := range tr {
			switch x := st.(type) {
			case hcl.TraverseRoot:
				names = append(names, x.Name)
			case hcl.TraverseAttr:
				names = append(names, x.Name)
			case hcl.TraverseIndex:
				if i == 3 && x.Key.Type() == cty.String {
					names = append(names, x.Key.AsString())
					continue
				}
				goto bad
			default:
				goto bad
			}
		}
		if len(names) < 3 || len(names) > 4 {
			goto bad
		}
		kind = names[2]
		if (kind != "output" && kind != "outputs") || (splat && kind != "outputs") {
			goto bad
		}
		if len(names) == 4 {
			field = names[3]
		}
		prod = l.roleByRefName(names[1])
		if prod == nil {
			known := sortedKeys(l.roles)
			*diags = append(*diags, errDiag(tr.SourceRange(), "Reference to an unbound role",
				fmt.Sprintf("No role block binds %q, so it has no outputs to reference.%s Bound roles: %s. Bind it with a role block, or fix the name.", names[1], suggest(strings.ReplaceAll(names[1], "_", "-"), known), listNames(known))))
			return nil, "", "", false
		}
		return prod, kind, field, true
	}
bad:
	*diags = append(*diags, errDiag(expr.Range(), "Invalid role reference",
		"A role reference is used as a whole value: role.NAME.output.FIELD for one output field (wired through the attribute it publishes), or role.NAME.outputs / role.NAME.output for a role.All / role.One / role.Same input. Computing with outputs (format, join, ...) is not possible: they are known only when the role runs."))
	return nil, "", "", false
}

func (l *loader) roleByRefName(n string) *RoleBlock {
	if rb, ok := l.roles[n]; ok {
		return rb
	}
	for _, rb := range l.s.Roles {
		if strings.ReplaceAll(rb.Name, "-", "_") == n {
			return rb
		}
	}
	return nil
}

// outputField finds an output field by Go name or snake_case name.
func outputField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && (f.Name == name || snake(f.Name) == name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func outputNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() {
			out = append(out, snake(f.Name))
		}
	}
	return out
}

// snake turns a Go name into snake_case: ClientURL → client_url.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// attrRef checks `attrs = { "a.b" = role.R.output.F }` in consumer rb: the
// graph wires attribute inputs from the role output that publishes that
// attribute, so Spec.Deployment has R publish F as "a.b"
// (graph.Deployment.PublishOutput; nothing to do when F's tag already
// says so). F must have a type the input takes, and R must be a role the
// consumer can see.
func (l *loader) attrRef(expr hcl.Expression, rb *RoleBlock, key string, want reflect.Type, diags *hcl.Diagnostics) {
	prod, kind, field, ok := l.parseRef(expr, diags)
	if !ok {
		return
	}
	rng := expr.Range()
	if kind == "outputs" {
		*diags = append(*diags, errDiag(rng, "Aggregate reference to an attribute",
			fmt.Sprintf("Attribute %q takes one value, but role.%s.outputs is every node's output. mason aggregates outputs by type: give role %q an input field of type role.All[T] and wire it with inputs = { Field = role.%s.outputs }.", key, prod.Name, rb.Name, prod.Name)))
		return
	}
	if field == "" {
		*diags = append(*diags, errDiag(rng, "Reference without an output field",
			fmt.Sprintf("Name the output field: role.%s.output.FIELD, one of: %s.", prod.Name, listNames(outputNames(prod.Def.Out())))))
		return
	}
	f, ok := outputField(prod.Def.Out(), field)
	if !ok {
		*diags = append(*diags, errDiag(rng, "Reference to a missing output",
			fmt.Sprintf("Role %q has no output %q.%s Its outputs are: %s.", prod.Name, field, suggest(field, outputNames(prod.Def.Out())), listNames(outputNames(prod.Def.Out())))))
		return
	}
	if !assignable(f.Type, want) {
		*diags = append(*diags, errDiag(rng, "Type mismatch",
			fmt.Sprintf("Output %s of role %q is a Go %v, but attribute %q of role %q is a %v.", f.Name, prod.Name, f.Type, key, rb.Name, want)))
		return
	}
	l.checkVisible(rb, prod, nil, rng, diags)
	rb.Refs = append(rb.Refs, Ref{Consumer: rb.Name, Input: inputFieldFor(rb, key), Producer: prod.Name, Output: f.Name, Attr: key, Range: rng})
}

// publishedAs returns the attribute output field of rb is tagged with,
// or "".
func publishedAs(rb *RoleBlock, field string) string {
	for _, p := range rb.Def.Publishes() {
		if p.Field == field {
			return p.Attr
		}
	}
	return ""
}

// checkPublishers reports attribute references that would make the graph
// see two publishers of one attribute where a consumer can see both (two
// outputs referenced under one name, or a reference under a name another
// role's tag publishes): the graph would refuse the plan, or wire the
// wrong one. Attributes published only by tags are left to the graph, as
// before references could rename outputs.
func (l *loader) checkPublishers(diags *hcl.Diagnostics) {
	type publisher struct {
		rb    *RoleBlock
		field string
		ref   *Ref // nil for a tag
	}
	byAttr := map[string][]publisher{}
	add := func(key string, p publisher) {
		for _, o := range byAttr[key] {
			if o.rb == p.rb && o.field == p.field {
				return
			}
		}
		byAttr[key] = append(byAttr[key], p)
	}
	for _, rb := range l.s.Roles {
		for _, p := range rb.Def.Publishes() {
			add(p.Attr, publisher{rb: rb, field: p.Field})
		}
	}
	var keys []string
	isKey := map[string]bool{}
	for _, rb := range l.s.Roles {
		for i := range rb.Refs {
			r := &rb.Refs[i]
			prod := l.roles[r.Producer]
			if r.Attr == "" || prod == nil || publishedAs(prod, r.Output) == r.Attr {
				continue
			}
			if !isKey[r.Attr] {
				isKey[r.Attr] = true
				keys = append(keys, r.Attr)
			}
			add(r.Attr, publisher{rb: prod, field: r.Output, ref: r})
		}
	}
	for _, key := range keys {
		ps := byAttr[key]
		for i, p := range ps {
			if p.ref == nil {
				continue
			}
			for j, o := range ps {
				if j == i || (o.ref != nil && j > i) || !l.overlap(p.rb, o.rb) {
					continue
				}
				how := fmt.Sprintf("role %q publishes its output %s as %q too (a Go tag)", o.rb.Name, o.field, key)
				if o.ref != nil {
					how = fmt.Sprintf("the reference at %s:%d:%d publishes output %s of role %q as %q too", o.ref.Range.Filename, o.ref.Range.Start.Line, o.ref.Range.Start.Column, o.field, o.rb.Name, key)
				}
				*diags = append(*diags, errDiag(p.ref.Range, "Ambiguous reference",
					fmt.Sprintf("This publishes output %s of role %q as attribute %q, but %s, and both reach the same nodes: a role taking %q there could be wired to the other output, or the plan refused. Wire each attribute from one output: reference the output already published as %[5]q, or wire this one through an attribute no other output uses.", p.field, p.rb.Name, key, how, key)))
				break
			}
		}
	}
}

func inputFieldFor(rb *RoleBlock, key string) string {
	for _, in := range rb.Def.Inputs() {
		if in.Kind == role.InputAttr && in.Attr == key {
			return in.Field
		}
	}
	return ""
}

func assignable(have, want reflect.Type) bool {
	if have.AssignableTo(want) {
		return true
	}
	unwrap := func(t reflect.Type) reflect.Type {
		if attr.IsSecret(reflect.Zero(t).Interface()) {
			m, _ := t.MethodByName("Reveal")
			return m.Type.Out(0)
		}
		return t
	}
	return unwrap(have).AssignableTo(unwrap(want))
}

// inputs reads `inputs = { Field = role.R.outputs }` for role.Same, One
// and All fields: the graph wires them by type; the reference names the
// producer, and the loader checks the graph will pick exactly it.
func (l *loader) inputs(expr hcl.Expression, rb *RoleBlock, diags *hcl.Diagnostics) {
	pairs, d := hcl.ExprMap(expr)
	*diags = append(*diags, d...)
	for _, kv := range pairs {
		name := hcl.ExprAsKeyword(kv.Key)
		if name == "" {
			if v, ok := l.evalString(kv.Key, diags); ok {
				name = v
			} else {
				continue
			}
		}
		var in *role.Input
		var wiring []string
		for _, x := range rb.Def.Inputs() {
			if !x.Kind.Wired() {
				continue
			}
			wiring = append(wiring, x.Field)
			if x.Field == name || snake(x.Field) == name {
				in = &x
			}
		}
		if in == nil {
			*diags = append(*diags, errDiag(kv.Key.Range(), "Unknown input",
				fmt.Sprintf("Role %q has no role.Same, role.One or role.All input %q.%s Its wiring inputs: %s. Set attribute inputs in attrs.", rb.Name, name, suggest(name, wiring), listNames(wiring))))
			continue
		}
		if !isRoleRef(kv.Value) {
			*diags = append(*diags, errDiag(kv.Value.Range(), "Input needs a role reference",
				fmt.Sprintf("Input %s is wired from role outputs: write role.NAME.%s.", in.Describe(), map[bool]string{true: "outputs", false: "output"}[in.Kind == role.InputAll])))
			continue
		}
		prod, kind, field, ok := l.parseRef(kv.Value, diags)
		if !ok {
			continue
		}
		rng := kv.Value.Range()
		switch {
		case field != "":
			*diags = append(*diags, errDiag(rng, "Field of an output for a wiring input",
				fmt.Sprintf("Input %s takes the whole output of type %v; write role.%s.%s without .%s.", in.Describe(), in.Type, prod.Name, kind, field)))
			continue
		case in.Kind == role.InputAll && kind != "outputs":
			*diags = append(*diags, errDiag(rng, "Single output for an aggregate input",
				fmt.Sprintf("Input %s takes every node's output: write role.%s.outputs.", in.Describe(), prod.Name)))
			continue
		case in.Kind != role.InputAll && kind != "output":
			*diags = append(*diags, errDiag(rng, "Aggregate for a single input",
				fmt.Sprintf("Input %s takes one output: write role.%s.output.", in.Describe(), prod.Name)))
			continue
		case prod.Def.Out() != in.Type:
			*diags = append(*diags, errDiag(rng, "Type mismatch",
				fmt.Sprintf("Input %s takes outputs of type %v, but role %q produces %v.", in.Describe(), in.Type, prod.Name, prod.Def.Out())))
			continue
		case in.Role != "" && in.Role != prod.Name:
			*diags = append(*diags, errDiag(rng, "Producer fixed in Go",
				fmt.Sprintf("Input %s is tagged role:%q in Go, so it is wired from that role, not %q.", in.Describe(), in.Role, prod.Name)))
			continue
		}
		n := len(*diags)
		l.checkWiredTo(rb, prod, in, rng, diags)
		if len(*diags) > n {
			continue
		}
		if in.Kind == role.InputSame {
			l.checkVisible(rb, prod, in, rng, diags)
		}
		rb.Refs = append(rb.Refs, Ref{Consumer: rb.Name, Input: in.Field, Producer: prod.Name, Range: rng})
	}
}

// checkNodes reports node names used by two pools with different labels
// (a node is one machine: it may be in several pools, described once).
func (l *loader) checkNodes(diags *hcl.Diagnostics) {
	owner := map[string]*Pool{}
	for _, p := range l.s.Pools {
		for _, n := range p.Nodes {
			if o, ok := owner[n]; ok && (o.Image != p.Image || o.Flavor != p.Flavor || !sameLabels(o.Labels, p.Labels)) {
				*diags = append(*diags, errDiag(p.Range, "Node described twice",
					fmt.Sprintf("Node %q is in pools %q and %q with different labels, flavor or image; a node in several pools must be described the same way in each.", n, o.Name, p.Name)))
			}
			if _, ok := owner[n]; !ok {
				owner[n] = p
			}
		}
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkCycles reports references that go round in a circle.
func (l *loader) checkCycles(diags *hcl.Diagnostics) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []Ref
	var visit func(rb *RoleBlock) bool
	visit = func(rb *RoleBlock) bool {
		color[rb.Name] = grey
		for _, r := range rb.Refs {
			p := l.roles[r.Producer]
			switch color[r.Producer] {
			case grey:
				*diags = append(*diags, errDiag(r.Range, "Reference cycle",
					fmt.Sprintf("Roles wait for each other's outputs: %s (each takes an output of the next). Break the circle: one of them must not need the other.", strings.Join(cycleText(stack, r), " → "))))
				return true
			case white:
				stack = append(stack, r)
				if visit(p) {
					return true
				}
				stack = stack[:len(stack)-1]
			}
		}
		color[rb.Name] = black
		return false
	}
	for _, rb := range l.s.Roles {
		if color[rb.Name] == white && visit(rb) {
			return
		}
	}
}

func cycleText(stack []Ref, last Ref) []string {
	var out []string
	for i, r := range stack {
		if r.Consumer == last.Producer {
			for _, q := range stack[i:] {
				out = append(out, q.Consumer)
			}
			break
		}
	}
	if last.Consumer != last.Producer || len(out) == 0 {
		out = append(out, last.Consumer)
	}
	return append(out, last.Producer)
}

// contentOf is body.Content that tells, for an unexpected argument or
// block, what the block does take.
func contentOf(body hcl.Body, schema *hcl.BodySchema, what string) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := body.Content(schema)
	var names []string
	for _, a := range schema.Attributes {
		names = append(names, a.Name)
	}
	var blocks []string
	for _, b := range schema.Blocks {
		blocks = append(blocks, b.Type)
	}
	for _, d := range diags {
		switch d.Summary {
		case "Unsupported argument":
			d.Detail += fmt.Sprintf(" %s takes the arguments: %s.", capFirst(what), listNames(names))
		case "Unsupported block type":
			if len(blocks) == 0 {
				d.Detail += fmt.Sprintf(" %s takes no blocks.", capFirst(what))
			} else {
				d.Detail += fmt.Sprintf(" %s takes the blocks: %s.", capFirst(what), listNames(blocks))
			}
		}
	}
	return c, diags
}

func capFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// conceal keeps a value from a sensitive variable secret: it is already
// when the field or the declared key is secret; a plain string is wrapped
// in attr.Secret (the binder unwraps it for the role).
func (l *loader) conceal(key string, g reflect.Value) (reflect.Value, bool) {
	if attr.IsSecret(g.Interface()) {
		return g, true
	}
	if k, ok := l.reg.keys[key]; ok {
		return g, k.Secret()
	}
	if g.Kind() == reflect.String && g.Type() == reflect.TypeFor[string]() {
		return reflect.ValueOf(attr.Conceal(g.String())), true
	}
	return g, false
}
