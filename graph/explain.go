package graph

import (
	"fmt"
	"reflect"

	"github.com/masonops/mason/role"
)

// Inputs says where each input field of the node-role id comes from, as
// the executor will bind it: for a role.Same, role.One or role.All input
// the producers that feed it (for Same, only the one on the node-role's
// own node), for an attribute input the output that publishes it or the
// layer that set it, for a role.Uses input the service. It answers "why
// does this node-role get that value?" from the one wiring rule the plan
// and the executor use, so it cannot disagree with them. Producers that
// have not run yet count with their output's zero value; an input that
// cannot be bound is the error, a *role.BindError.
func (p *Plan) Inputs(id string) ([]role.Binding, error) {
	i, ok := p.g.index[id]
	if !ok {
		return nil, fmt.Errorf("graph: plan of %s has no node-role %q", p.Deployment, id)
	}
	outputs := func(k int32) any {
		if o := p.outs[k]; o != nil {
			return o
		}
		return reflect.Zero(p.g.nrs[k].def.Out()).Interface()
	}
	var bs []role.Binding
	if _, _, err := p.bindRecording(int(i), outputs, newAggValues(p.g, outputs), true, nil, true, &bs); err != nil {
		return bs, err
	}
	return bs, nil
}
