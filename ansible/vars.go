package ansible

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode"

	"github.com/masonops/mason/attr"
)

// fieldVar is the variable name of a struct field, and whether the field
// is optional (outputs) or skipped.
func fieldVar(f reflect.StructField) (name string, optional, skip bool) {
	tag, ok := f.Tag.Lookup("ansible")
	if ok {
		n, opts, _ := strings.Cut(tag, ",")
		if n == "-" {
			return "", false, true
		}
		if n != "" {
			name = n
		}
		optional = opts == "optional"
	}
	if name == "" {
		name = snake(f.Name)
	}
	return name, optional, false
}

// snake turns a Go name into a variable name: ListenPort → listen_port,
// DBPassword → db_password, TLSCertPEM → tls_cert_pem, Port2 → port2.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

var (
	statsType    = reflect.TypeFor[Stats]()
	jsonMarsh    = reflect.TypeFor[json.Marshaler]()
	textMarsh    = reflect.TypeFor[encoding.TextMarshaler]()
	rolePkgPath  = "github.com/masonops/mason/role"
	secretValuer = "Reveal"
)

// encodeVars turns the input struct into the play's variables, revealing
// secrets, and returns every secret value (as it may appear in output) for
// redaction.
func encodeVars(in any) (map[string]any, []string, error) {
	v := reflect.ValueOf(in)
	if v.Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("input %T is not a struct", in)
	}
	vars := map[string]any{}
	var secrets []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, skip := fieldVar(f)
		if skip {
			continue
		}
		if _, dup := vars[name]; dup {
			return nil, nil, fmt.Errorf("input fields name variable %q twice: tag one `ansible:\"other_name\"`", name)
		}
		val, err := toVar(v.Field(i), &secrets, false)
		if err != nil {
			return nil, nil, fmt.Errorf("input %s: %w", f.Name, err)
		}
		vars[name] = val
	}
	return vars, secrets, nil
}

// toVar converts a Go value into what json encodes for Ansible. Inside a
// secret, every string is recorded for redaction.
func toVar(v reflect.Value, secrets *[]string, inSecret bool) (any, error) {
	if !v.IsValid() {
		return nil, nil
	}
	if v.CanInterface() && attr.IsSecret(v.Interface()) {
		revealed := v.MethodByName(secretValuer).Call(nil)[0]
		x, err := toVar(revealed, secrets, true)
		if err != nil {
			return nil, err
		}
		return x, nil
	}
	t := v.Type()
	if t.PkgPath() == rolePkgPath {
		switch {
		case strings.HasPrefix(t.Name(), "Same[") || strings.HasPrefix(t.Name(), "One["):
			return toVar(v.FieldByName("Value"), secrets, inSecret)
		case strings.HasPrefix(t.Name(), "All["):
			out := make([]any, v.Len())
			for i := range out {
				x, err := toVar(v.Index(i).FieldByName("Value"), secrets, inSecret)
				if err != nil {
					return nil, err
				}
				out[i] = x
			}
			return out, nil
		}
	}
	if t.Implements(jsonMarsh) || t.Implements(textMarsh) {
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, err
		}
		if inSecret {
			var s string
			if json.Unmarshal(b, &s) == nil {
				*secrets = append(*secrets, s)
			}
		}
		return json.RawMessage(b), nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		return toVar(v.Elem(), secrets, inSecret)
	case reflect.String:
		if inSecret {
			*secrets = append(*secrets, v.String())
		}
		return v.String(), nil
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if inSecret {
			*secrets = append(*secrets, fmt.Sprint(v.Interface()))
		}
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if inSecret {
			*secrets = append(*secrets, fmt.Sprint(v.Interface()))
		}
		return v.Uint(), nil
	case reflect.Float32, reflect.Float64:
		if inSecret {
			*secrets = append(*secrets, fmt.Sprint(v.Interface()))
		}
		return v.Float(), nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}, nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			s := string(v.Bytes())
			if inSecret {
				*secrets = append(*secrets, s)
			}
			return s, nil
		}
		out := make([]any, v.Len())
		for i := range out {
			x, err := toVar(v.Index(i), secrets, inSecret)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case reflect.Map:
		out := map[string]any{}
		iter := v.MapRange()
		for iter.Next() {
			x, err := toVar(iter.Value(), secrets, inSecret)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(iter.Key().Interface())] = x
		}
		return out, nil
	case reflect.Struct:
		out := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if tag, ok := f.Tag.Lookup("json"); ok {
				n, _, _ := strings.Cut(tag, ",")
				if n == "-" {
					continue
				}
				if n != "" {
					name = n
				}
			}
			x, err := toVar(v.Field(i), secrets, inSecret)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			out[name] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %v cannot be an Ansible variable", t)
}

// outputNames lists the variables Out's fields are read from.
func outputNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Type == statsType {
			continue
		}
		if name, _, skip := fieldVar(f); !skip {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// decodeOutputs fills *out from the values the playbook set and its
// recap.
func decodeOutputs(out any, rep *report) error {
	v := reflect.ValueOf(out).Elem()
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("output %v is not a struct", v.Type())
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Type == statsType {
			v.Field(i).Set(reflect.ValueOf(rep.stats))
			continue
		}
		name, optional, skip := fieldVar(f)
		if skip {
			continue
		}
		raw, ok := rep.outputs[name]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("output %s: the playbook set no variable %q (set it with set_fact or register it; tag the field `ansible:\"%s,optional\"` if it may stay unset)", f.Name, name, name)
		}
		if err := decodeVar(raw, v.Field(i).Addr().Interface()); err != nil {
			return fmt.Errorf("output %s: variable %q does not fit %v: %w", f.Name, name, f.Type, err)
		}
	}
	return nil
}

// redactor replaces secret values in text.
type redactor struct{ r *strings.Replacer }

// newRedactor builds a redactor for secrets. Values shorter than 3 bytes
// are not redacted: they would blank out ordinary text.
func newRedactor(secrets []string) redactor {
	var pairs []string
	seen := map[string]bool{}
	// Longer values first, so a secret containing another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		for _, form := range []string{s, strings.Trim(fmt.Sprintf("%q", s), `"`)} {
			if len(form) < 3 || seen[form] {
				continue
			}
			seen[form] = true
			pairs = append(pairs, form, attr.Redacted)
		}
	}
	if len(pairs) == 0 {
		return redactor{}
	}
	return redactor{strings.NewReplacer(pairs...)}
}

func (r redactor) String(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// decodeVar decodes a variable's JSON into target. Ansible templates
// set_fact values to strings unless Jinja's native types are on
// ("{{ port + 1 }}" is "8081"), so a string holding JSON that fits target
// (a number, a boolean, a list) is taken for that value.
func decodeVar(raw json.RawMessage, target any) error {
	err := json.Unmarshal(raw, target)
	if err == nil {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if json.Unmarshal([]byte(s), target) == nil {
			return nil
		}
	}
	return err
}
