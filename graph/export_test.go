package graph

import (
	"fmt"

	"github.com/masonops/mason/role"
)

// DecodeEntry decodes one journal value as ReadJournal would: tests read
// the journal's history from a watch with it.
func DecodeEntry(b []byte) (Entry, error) {
	var r record
	if err := r.unmarshal(b); err != nil {
		return Entry{}, err
	}
	e := Entry{ID: r.ID, State: r.State, Attempt: r.Attempt, Reason: r.Reason, Error: r.Error,
		BlockedBy: r.BlockedBy, At: r.At, Duration: r.Duration}
	if r.Last != nil {
		e.Succeeded, e.Version, e.Digest = r.Last.At, r.Last.Version, r.Last.Digest
	}
	return e, nil
}

// BindingsOf binds node-role id as the plan would, from the outputs of
// the converged node-roles it waits for, and says where each input came
// from: tests check provenance with it.
func (p *Plan) BindingsOf(id string) ([]role.Binding, error) {
	i, ok := p.g.index[id]
	if !ok {
		return nil, fmt.Errorf("no node-role %s", id)
	}
	nr := p.g.nrs[i]
	env := nr.usesEnv(p.d.services, true)
	env.Attrs = p.attrsFor(nr.name).Clone()
	for _, pi := range nr.pubs {
		if err := p.g.nrs[pi].publish(env.Attrs, p.outs[pi]); err != nil {
			return nil, err
		}
	}
	for _, w := range nr.wired {
		env.Outputs = append(env.Outputs, role.Output{Role: p.g.nrs[w].meta.Name, Node: p.g.nrs[w].name, Value: p.outs[w]})
	}
	shared, _, err := p.aggs.env(nr, true)
	if err != nil {
		return nil, err
	}
	env.Shared = shared
	_, bs, err := nr.def.Bind(env)
	return bs, err
}
