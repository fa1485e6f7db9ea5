package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// sensitiveMark marks values derived from sensitive variables.
const sensitiveMark = "sensitive"

// EnvPrefix starts the names of environment variables that set spec
// variables: MASON_VAR_members=5 sets var.members.
const EnvPrefix = "MASON_VAR_"

type variable struct {
	name        string
	typ         cty.Type
	def         cty.Value
	hasDef      bool
	badDef      bool
	sensitive   bool
	description string
	validations []validation
	rng         hcl.Range
}

type validation struct {
	cond hcl.Expression
	msg  hcl.Expression
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "condition", Required: true}, {Name: "error_message", Required: true}},
}

func decodeVariable(b *hcl.Block) (*variable, hcl.Diagnostics) {
	v := &variable{name: b.Labels[0], typ: cty.DynamicPseudoType, rng: b.DefRange}
	content, diags := contentOf(b.Body, variableSchema, "a variable block")
	if !hclsyntax.ValidIdentifier(v.name) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid variable name",
			Detail: fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter.", v.name), Subject: b.LabelRanges[0].Ptr()})
	}
	if a, ok := content.Attributes["type"]; ok {
		t, d := typeexpr.TypeConstraint(a.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.typ = t
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		d := hcl.Diagnostics{}
		val, dd := a.Expr.Value(nil)
		d = append(d, dd...)
		if !d.HasErrors() && val.Type() == cty.String && !val.IsNull() {
			v.description = val.AsString()
		}
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() && val.Type() == cty.Bool && !val.IsNull() {
			v.sensitive = val.True()
		}
	}
	if a, ok := content.Attributes["default"]; ok {
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			cv, err := convert.Convert(val, v.typ)
			if err != nil {
				v.badDef = true
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid default value for variable",
					Detail:  fmt.Sprintf("The default of variable %q does not fit its type %s: %s.", v.name, typeexpr.TypeString(v.typ), err),
					Subject: a.Expr.Range().Ptr()})
			} else {
				v.def, v.hasDef = cv, true
			}
		}
	}
	for _, vb := range content.Blocks {
		vc, d := contentOf(vb.Body, validationSchema, "a validation block")
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		v.validations = append(v.validations, validation{cond: vc.Attributes["condition"].Expr, msg: vc.Attributes["error_message"].Expr})
	}
	return v, diags
}

// varInput is one value given for a variable from outside the spec.
type varInput struct {
	expr   hcl.Expression
	raw    string // for strings given on the command line or in the environment
	isRaw  bool
	rng    hcl.Range
	source string
}

// resolveVariables decides every variable's value: default < environment
// < variable files < -var flags; then checks types and validations.
func resolveVariables(vars map[string]*variable, opts Options) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	given := map[string]varInput{}
	// Environment.
	for _, kv := range opts.Env {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvPrefix)
		if _, declared := vars[name]; !declared {
			continue // like Terraform: stray environment is not an error
		}
		given[name] = varInput{raw: val, isRaw: true, source: "environment variable " + k,
			rng: hcl.Range{Filename: "<env " + k + ">", Start: hcl.InitialPos, End: hcl.InitialPos}}
	}
	// Variable files.
	for _, f := range opts.VarFiles {
		file, d := hclsyntax.ParseConfig(f.Src, f.Name, hcl.InitialPos)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		attrs, d := file.Body.JustAttributes()
		diags = append(diags, d...)
		for _, name := range sortedKeys(attrs) {
			a := attrs[name]
			if _, declared := vars[name]; !declared {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
					Detail:  fmt.Sprintf("The spec declares no variable %q. Declare it with a variable block, or remove this line.%s", name, suggest(name, sortedKeys(vars))),
					Subject: a.NameRange.Ptr()})
				continue
			}
			given[name] = varInput{expr: a.Expr, rng: a.Expr.Range(), source: f.Name}
		}
	}
	// Flags.
	for _, name := range sortedKeys(opts.Vars) {
		rng := hcl.Range{Filename: "<-var " + name + ">", Start: hcl.InitialPos, End: hcl.InitialPos}
		if _, declared := vars[name]; !declared {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("-var %s=...: the spec declares no variable %q.%s", name, name, suggest(name, sortedKeys(vars))), Subject: &rng})
			continue
		}
		given[name] = varInput{raw: opts.Vars[name], isRaw: true, rng: rng, source: "-var flag"}
	}
	values := map[string]cty.Value{}
	names := sortedKeys(vars)
	for _, name := range names {
		v := vars[name]
		in, ok := given[name]
		var val cty.Value
		switch {
		case !ok && v.hasDef:
			values[name] = v.def
			if v.sensitive {
				values[name] = v.def.Mark(sensitiveMark)
			}
			continue
		case !ok && v.badDef:
			values[name] = cty.UnknownVal(v.typ)
			continue
		case !ok:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for required variable",
				Detail:  fmt.Sprintf("Variable %q has no default and no value was given. Pass -var %s=VALUE, set %s%s, put it in a -var-file, or give the variable a default.", name, name, EnvPrefix, name),
				Subject: v.rng.Ptr()})
			values[name] = cty.UnknownVal(v.typ)
			continue
		case in.isRaw && (v.typ == cty.String || v.typ == cty.DynamicPseudoType):
			val = cty.StringVal(in.raw)
		case in.isRaw:
			e, d := hclsyntax.ParseExpression([]byte(in.raw), in.rng.Filename, hcl.InitialPos)
			if d.HasErrors() || len(e.Variables()) > 0 {
				// Not an HCL value (a bare word): take it as text, and
				// let the type check below say what is wrong.
				val = cty.StringVal(in.raw)
				break
			}
			in.expr = e
			fallthrough
		default:
			ev, d := in.expr.Value(nil)
			diags = append(diags, d...)
			if d.HasErrors() {
				values[name] = cty.UnknownVal(v.typ)
				continue
			}
			val = ev
		}
		cv, err := convert.Convert(val, v.typ)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail:  fmt.Sprintf("The value for variable %q from %s does not fit its type %s: %s.", name, in.source, typeexpr.TypeString(v.typ), err),
				Subject: in.rng.Ptr()})
			values[name] = cty.UnknownVal(v.typ)
			continue
		}
		if v.sensitive {
			cv = cv.Mark(sensitiveMark)
		}
		values[name] = cv
	}
	// Validations see every variable (var.self is var.<name>).
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(values)}, Functions: functions()}
	for _, name := range names {
		v := vars[name]
		if !values[name].IsWhollyKnown() {
			continue
		}
		for _, vl := range v.validations {
			ok, d := vl.cond.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			ok, _ = ok.UnmarkDeep()
			if ok.Type() != cty.Bool || ok.IsNull() || !ok.IsKnown() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid validation condition",
					Detail: "A validation condition must be true or false.", Subject: vl.cond.Range().Ptr()})
				continue
			}
			if ok.True() {
				continue
			}
			msg := "The value is not valid."
			if m, d := vl.msg.Value(ctx); !d.HasErrors() && m.Type() == cty.String && !m.IsNull() && m.IsKnown() {
				if m.IsMarked() {
					msg = "The value is not valid (the message is not shown: it uses a sensitive value)."
				} else {
					msg = m.AsString()
				}
			}
			subj := v.rng
			if in, ok := given[name]; ok {
				subj = in.rng
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail: fmt.Sprintf("%s (validation of variable %q at %s)", msg, name, rangeText(vl.cond.Range())), Subject: subj.Ptr()})
		}
	}
	return values, diags
}

func rangeText(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// suggest returns " Did you mean "x"?" for the closest name, if any is close.
func suggest(name string, names []string) string {
	best, bestD := "", 4
	for _, n := range names {
		if d := editDistance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func listNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	s := append([]string(nil), names...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}
