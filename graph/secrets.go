package graph

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store"
)

// Secrets in the journal. An output that holds an attr.Secret is sealed
// (package seal, under the deployment's key-encryption key) before its
// record is written, bound to the record's store key; the rest of the
// record stays readable. Digests of inputs that hold secrets are keyed:
// HMAC-SHA256, under a digest key of the deployment's own, of the plain
// digest, which itself never rests. The digest key is kept sealed in the
// deployment's keys record, with the KEK's check value.

// UseKEK sets the key-encryption key the deployment's journal seals its
// secrets with: outputs that hold an [attr.Secret], and the key that
// digests of secret inputs are computed with. Load it with package seal
// (seal.Load: a 0600 file or an environment variable) — the same key
// package pki seals private keys with.
//
// A deployment whose roles output or take secrets needs one: [NewPlan]
// refuses to plan it without, before anything runs, and refuses a key
// other than the one its journal was sealed with. A deployment without
// secrets needs none, and its journal stays readable without a key.
func (d *Deployment) UseKEK(k *seal.KEK) { d.kek = k }

// How an output is held, in the byte before it. outSecret exists only in
// memory: the journal seals such an output when it writes its record.
const (
	outPlain  byte = 0 // gob; holds no secret
	outSecret byte = 1 // gob that holds a secret
	outSealed byte = 2 // outSecret's gob, sealed: written so, and kept so when no key was given
)

// keyedPrefix starts a keyed digest's text; plain digests start with
// "sha256:".
const keyedPrefix = "hmac-sha256:"

// keysVersion is the first byte of a deployment's keys record: it is
// keysVersion, the KEK's check value (seal.CheckSize bytes), then the
// digest key sealed by the KEK.
const keysVersion = 1

func keysKey(deployment string) string { return "mason/graph/" + deployment + "/keys" }

// outputAD is what a sealed output is bound to: its record's store key.
func outputAD(key string) []byte { return []byte(key + "#output") }

// sealer is what a plan and its journal know of the deployment's
// secrets. A nil *sealer means the deployment has none, and no key.
type sealer struct {
	deployment string
	kek        *seal.KEK
	digest     *seal.DigestKey
	// create is a new deployment's keys record: the journal's first write
	// creates it, in the same transaction as its first records.
	create []byte
	// keyed lists, per role, the input fields whose digests are keyed;
	// outs says which roles' outputs may hold secrets.
	keyed map[*role.Def][]string
	outs  map[*role.Def]attr.Holding
	// noKey is the refusal of a deployment with secrets and no key,
	// reported once the plan found no wiring error (refusal).
	noKey error
}

// refusal is why the plan must not be made: secrets and no key.
func (s *sealer) refusal() error {
	if s == nil {
		return nil
	}
	return s.noKey
}

// NoKEKError is NewPlan's refusal of a deployment that keeps secrets in
// its journal but was given no key-encryption key (Deployment.UseKEK).
type NoKEKError struct {
	Deployment string
	// Secrets names the outputs and inputs that hold secrets ("output
	// Tokens of role swarm-init").
	Secrets []string
	// Sealed is true when the journal holds values sealed by an earlier
	// run.
	Sealed bool
}

// Error implements error.
func (e *NoKEKError) Error() string {
	var what string
	if e.Sealed {
		what = "its journal holds values sealed by an earlier run"
	}
	if len(e.Secrets) > 0 {
		list := e.Secrets
		if len(list) > 4 {
			list = append(list[:4:4], fmt.Sprintf("and %d more", len(e.Secrets)-4))
		}
		if what != "" {
			what += " and"
		} else {
			what = "its journal"
		}
		what += " would keep secrets (" + strings.Join(list, ", ") + ")"
	}
	return fmt.Sprintf("graph: deployment %s has no key-encryption key, but %s: give it the application's key with Deployment.UseKEK (package seal loads one from a 0600 file or an environment variable); nothing was run or written", e.Deployment, what)
}

// Is makes errors.Is(err, seal.ErrNoKey) true.
func (e *NoKEKError) Is(target error) bool { return target == seal.ErrNoKey }

// loadJournal reads the journal of d, whose graph is g, from st, with the
// deployment's keys: it refuses a deployment with secrets and no key, or
// a key the journal was not sealed with; it opens sealed outputs and
// brings records written before sealing (plain secret outputs, plain
// digests of secret inputs) up to date, in memory: they are written
// sealed and keyed with the next write of their record.
func loadJournal(ctx context.Context, d *Deployment, g *dag, st store.Store) (*sealer, map[string]*record, error) {
	s, err := newSealer(ctx, d, g, st)
	if err != nil {
		return nil, nil, err
	}
	j := newStoreJournal(st, d.name)
	j.seal = s
	recs, err := j.load(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.migrate(g, recs)
	return s, recs, nil
}

func newSealer(ctx context.Context, d *Deployment, g *dag, st store.Store) (*sealer, error) {
	s := &sealer{deployment: d.name, kek: d.kek, keyed: map[*role.Def][]string{}, outs: map[*role.Def]attr.Holding{}}
	needs := s.classify(d, g)
	e, err := st.Get(ctx, keysKey(d.name))
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("graph: reading the keys of deployment %s: %w", d.name, err)
	}
	if s.kek == nil {
		if found {
			return nil, &NoKEKError{Deployment: d.name, Secrets: needs, Sealed: true}
		}
		if len(needs) > 0 {
			// Plain digests are enough to find wiring errors first; the
			// plan is refused before anything runs.
			s.keyed = nil
			s.noKey = &NoKEKError{Deployment: d.name, Secrets: needs}
			return s, nil
		}
		if len(s.outs) == 0 {
			return nil, nil
		}
		// Outputs that may hold secrets in interface values: the journal
		// refuses to write one that does.
		s.keyed = nil
		return s, nil
	}
	if found {
		if s.digest, err = s.openKeys(e.Value); err != nil {
			return nil, err
		}
		return s, nil
	}
	if len(s.keyed) == 0 && len(s.outs) == 0 {
		return s, nil
	}
	if s.digest, err = seal.NewDigestKey(); err != nil {
		return nil, err
	}
	sealed, err := s.kek.SealDigestKey(s.digest, []byte(keysKey(d.name)))
	if err != nil {
		return nil, err
	}
	s.create = append(append([]byte{keysVersion}, s.kek.CheckValue()...), sealed...)
	return s, nil
}

// openKeys checks the KEK against a keys record and opens its digest key.
func (s *sealer) openKeys(b []byte) (*seal.DigestKey, error) {
	key := keysKey(s.deployment)
	if len(b) < 1+seal.CheckSize || b[0] != keysVersion {
		return nil, fmt.Errorf("graph: the keys record of deployment %s (%s) is damaged or from a newer mason (format %d); restore the state from a backup", s.deployment, key, firstByte(b))
	}
	if err := s.kek.Verify(b[1 : 1+seal.CheckSize]); err != nil {
		var me *seal.MismatchError
		if errors.As(err, &me) {
			me.Where = key
		}
		return nil, fmt.Errorf("graph: deployment %s: %w; nothing was run or written", s.deployment, err)
	}
	dk, err := s.kek.OpenDigestKey(b[1+seal.CheckSize:], []byte(key))
	if err != nil {
		return nil, fmt.Errorf("graph: the digest key of deployment %s (%s): %w", s.deployment, key, err)
	}
	return dk, nil
}

// classify finds the roles whose outputs may hold secrets and the inputs
// whose digests are keyed, and returns what needs a key, for the error.
// An input is secret when its type holds an attr.Secret, or when it is an
// attribute whose value is secret (a key declared AsSecret, a secret value
// set in the deployment, an output field of Secret type published under
// that name): a secret delivered to a plain field is still a secret.
func (s *sealer) classify(d *Deployment, g *dag) (needs []string) {
	var secretAttrs map[string]bool // found when a plain attribute input needs it
	var last *role.Def
	for _, nr := range g.nrs {
		def := nr.def
		if def == last {
			continue // the node-roles of one role are usually side by side
		}
		last = def
		if _, done := s.outs[def]; done {
			continue
		}
		h := attr.SecretsIn(def.Out())
		s.outs[def] = h
		if h == attr.HoldsSecret {
			needs = append(needs, fmt.Sprintf("output %s of role %s", strings.Join(secretFields(def.Out()), ", "), def.Name()))
		}
		var keyed []string
		for _, in := range def.Inputs() {
			if in.Kind == role.InputUses {
				continue
			}
			ih := attr.SecretsIn(in.Type)
			if in.Kind == role.InputAttr && ih != attr.HoldsSecret {
				if secretAttrs == nil {
					secretAttrs = d.secretAttrs(g)
				}
				if secretAttrs[in.Attr] {
					ih = attr.HoldsSecret
				}
			}
			switch ih {
			case attr.HoldsSecret:
				needs = append(needs, fmt.Sprintf("input %s of role %s", in.Field, def.Name()))
				keyed = append(keyed, in.Field)
			case attr.MayHoldSecret:
				if s.kek != nil {
					keyed = append(keyed, in.Field)
				}
			}
		}
		s.keyed[def] = keyed
	}
	for def, h := range s.outs {
		if h == attr.HoldsNoSecret {
			delete(s.outs, def)
		}
	}
	for def, k := range s.keyed {
		if len(k) == 0 {
			delete(s.keyed, def)
		}
	}
	sort.Strings(needs)
	return needs
}

// secretFields names the fields of struct type t that hold secrets.
func secretFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if attr.SecretsIn(t.Field(i).Type) == attr.HoldsSecret {
			out = append(out, t.Field(i).Name)
		}
	}
	return out
}

// secretAttrs names the attributes whose values are secret somewhere in
// d: set as secrets, declared as secret keys, or published from output
// fields that hold secrets.
func (d *Deployment) secretAttrs(g *dag) map[string]bool {
	out := map[string]bool{}
	scan := func(vs *attr.Values, all bool) {
		for _, name := range vs.Names() {
			if out[name] {
				continue
			}
			if decl, ok := vs.Decl(name); ok && decl.Secret() {
				out[name] = true
				continue
			}
			if !all {
				if v, ok := vs.Lookup(name); ok && v.Secret() {
					out[name] = true
				}
				continue
			}
			for _, v := range vs.Explain(name) {
				if v.Secret() {
					out[name] = true
					break
				}
			}
		}
	}
	scan(d.attrs, true)
	for _, vs := range d.nodeAttrs {
		scan(vs, false) // the top value only: nodes may be many
	}
	byName := map[string]*role.Def{}
	for _, nr := range g.nrs {
		if byName[nr.meta.Name] != nil {
			continue
		}
		byName[nr.meta.Name] = nr.def
		for _, p := range nr.def.Publishes() {
			if attr.SecretsIn(p.Type) == attr.HoldsSecret {
				out[p.Attr] = true
			}
		}
	}
	for _, p := range d.outPubs {
		if def := byName[p.role]; def != nil {
			if f, ok := def.Out().FieldByName(p.field); ok && attr.SecretsIn(f.Type) == attr.HoldsSecret {
				out[p.attr] = true
			}
		}
	}
	return out
}

// digestInputs is nr.def.DigestInputs with the digests of secret inputs,
// and the total, keyed. Inputs without secrets cost nothing more. shared
// are the plain digests of shared aggregates by field (aggregate.go),
// which are not walked again.
//
// digs, when not nil, is where the field digests go: len(digs) must be
// len(nr.def.DigestedInputs()).
func (s *sealer) digestInputs(nr *nodeRole, in any, shared map[string]string, digs []string) (string, fieldDigests, error) {
	names := nr.def.DigestedInputs()
	if digs == nil {
		digs = make([]string, len(names))
	}
	fields := fieldDigests{names: names, digs: digs}
	dg, err := nr.def.DigestInputsInto(in, shared, fields.digs)
	if err != nil || s == nil {
		return dg, fields, err
	}
	keyed := s.keyed[nr.def]
	if len(keyed) == 0 {
		return dg, fields, nil
	}
	for _, f := range keyed {
		if v, ok := fields.get(f); ok {
			fields.set(f, s.key(v))
		}
	}
	return s.key(dg), fields, nil
}

// key turns a plain digest into a keyed one: HMAC-SHA256 of its text.
func (s *sealer) key(plain string) string {
	sum := s.digest.Sum([]byte(plain))
	b := make([]byte, 0, len(keyedPrefix)+2*len(sum))
	b = append(b, keyedPrefix...)
	return string(hex.AppendEncode(b, sum[:]))
}

// migrate brings records written before sealing up to date in memory:
// the plain digests of inputs that are secret now are keyed (a keyed
// digest of the same plain digest is what digestInputs computes, so
// nothing re-runs), and plain outputs of roles whose outputs may hold
// secrets are marked to be sealed when their record is next written —
// every Apply writes a record for every node-role of the deployment.
func (s *sealer) migrate(g *dag, recs map[string]*record) {
	if s == nil {
		return
	}
	for id, r := range recs {
		i, ok := g.index[id]
		if !ok || r.Last == nil {
			continue
		}
		l, def := r.Last, g.nrs[i].def
		if keyed := s.keyed[def]; len(keyed) > 0 {
			for _, f := range keyed {
				if v, ok := l.Fields.get(f); ok && !strings.HasPrefix(v, keyedPrefix) {
					l.Fields.set(f, s.key(v))
				}
			}
			if !strings.HasPrefix(l.Digest, keyedPrefix) {
				l.Digest = s.key(l.Digest)
			}
		}
		if s.kek != nil && s.outs[def] != attr.HoldsNoSecret && len(l.Output) > 0 && l.Output[0] == outPlain {
			l.Output[0] = outSecret
		}
	}
}

// open opens the sealed output of r, read at key, when the key is known;
// without one it stays sealed (ReadJournal needs no key).
func (s *sealer) open(r *record, key string) error {
	if s == nil || s.kek == nil || r.Last == nil || len(r.Last.Output) == 0 || r.Last.Output[0] != outSealed {
		return nil
	}
	plain, err := s.kek.Open(r.Last.Output[1:], outputAD(key))
	if err != nil {
		return fmt.Errorf("graph: the journal of deployment %s: the output of %s (%s) does not open: %w; give the deployment the key-encryption key its journal was sealed with", s.deployment, r.ID, key, err)
	}
	r.Last.Output = append([]byte{outSecret}, plain...)
	return nil
}

// marshal encodes r for the store key key, sealing its output when it
// holds a secret. A secret without a key is an error: it is never written
// in plain text.
func (s *sealer) marshal(r *record, key string, buf []byte) ([]byte, error) {
	if r.Last == nil || len(r.Last.Output) == 0 || r.Last.Output[0] != outSecret {
		return r.marshal(buf), nil
	}
	if s == nil || s.kek == nil {
		dep := strings.TrimSuffix(strings.TrimPrefix(key, "mason/graph/"), "/nr/"+r.ID)
		return buf, fmt.Errorf("the output of %s holds a secret (attr.Secret), and deployment %s has no key-encryption key to seal it with: give it one with Deployment.UseKEK; it was not written", r.ID, dep)
	}
	sealed, err := s.kek.Seal(r.Last.Output[1:], outputAD(key))
	if err != nil {
		return buf, err
	}
	l := *r.Last
	l.Output = append([]byte{outSealed}, sealed...)
	rc := *r
	rc.Last = &l
	return rc.marshal(buf), nil
}

// read decodes the record stored at key, opening its sealed output.
func (s *sealer) read(r *record, key string, b []byte) error {
	if err := r.unmarshal(b); err != nil {
		return err
	}
	return s.open(r, key)
}

// newJournal is the journal an Apply of p writes to.
func (p *Plan) newJournal() *storeJournal {
	j := newStoreJournal(p.st, p.Deployment)
	j.seal = p.seal
	// The key of every slot is known: the node-roles hold them.
	j.keys = make([]string, len(p.g.nrs)+1)
	j.written = make([]uint32, len(p.g.nrs)+1)
	for i, nr := range p.g.nrs {
		j.keys[i+1] = nr.key
	}
	return j
}
