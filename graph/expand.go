package graph

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// expand makes the node-roles: every role bound once per node of its
// pool (node scope), on the pool's first node (cluster scope), or once
// for the deployment (service scope).
func (b *builder) expand() error {
	d := b.d
	var errs *multierror.Error
	size := 0
	every := make([]int32, len(d.nodeList)) // the nodes of a pool of all
	for k := range every {
		every[k] = int32(k)
	}
	nodesOf := func(bd binding) []int32 { // indices in d.nodeList
		switch {
		case bd.pool == nil:
			return nil
		case bd.pool.all:
			return every
		}
		return bd.pool.ix
	}
	for _, bd := range d.binds {
		size += max(1, len(nodesOf(bd))) * len(bd.defs)
	}
	b.g = &dag{d: d, index: make(map[string]int32, size)}
	b.nrs = make([]*nodeRole, 0, size)
	b.infoOf = make([]*defInfo, 0, size)
	b.typeSlots, b.roleSlots = map[reflect.Type]int{}, map[string]int{}
	all := make([]nodeRole, 0, size) // one allocation for every node-role
	infos := map[*role.Def]*defInfo{}
	keyPrefix := journalPrefix(d.name)
	var keys keyText
	add := func(def *role.Def, nodeIx int32, bd binding) {
		var node *provider.Node
		name := ""
		if nodeIx >= 0 {
			node = d.nodeList[nodeIx]
			name = node.Name
		}
		// The journal key holds the ID: one string for both.
		key := keys.key(keyPrefix, def.Name(), name)
		id := key[len(keyPrefix):]
		if _, dup := b.g.index[id]; dup {
			errs = multierror.Append(errs, fmt.Errorf("graph: role %q is bound twice to %s (again at %s:%d); bind each role once per node", def.Name(), orDeployment(name), bd.file, bd.line))
			return
		}
		b.g.index[id] = int32(len(b.nrs))
		if len(all) == cap(all) {
			all = make([]nodeRole, 0, 64)
		}
		info := infos[def]
		if info == nil {
			var err error
			if info, err = b.infoFor(def); err != nil {
				errs = multierror.Append(errs, err)
			}
			infos[def] = info
		}
		all = append(all, nodeRole{id: id, key: key, def: def, meta: info.meta, node: node, nodeIx: nodeIx, name: name})
		b.nrs = append(b.nrs, &all[len(all)-1])
		b.infoOf = append(b.infoOf, info)
	}
	for _, bd := range d.binds {
		nodes := nodesOf(bd)
		for _, def := range bd.defs {
			switch def.Meta().Scope {
			case role.ScopeService:
				add(def, -1, bd)
			case role.ScopeCluster:
				if len(nodes) == 0 {
					errs = multierror.Append(errs, fmt.Errorf("graph: cluster role %q is bound to pool %q, which has no nodes", def.Name(), bd.pool.name))
					continue
				}
				first := nodes[0]
				for _, n := range nodes[1:] {
					if d.nodeList[n].Name < d.nodeList[first].Name {
						first = n
					}
				}
				add(def, first, bd)
			default:
				for _, n := range nodes {
					add(def, n, bd)
				}
			}
		}
	}
	for _, op := range d.outPubs {
		if _, ok := b.roleSlots[op.role]; !ok {
			errs = multierror.Append(errs, fmt.Errorf("graph: PublishOutput at %s:%d: role %q is not bound, so it has no output %s to publish as %q; bind it, or fix the name", op.file, op.line, op.role, op.field, op.attr))
		}
	}
	return errs.ErrorOrNil()
}

// keyText makes journal keys (journalPrefix + nodeRoleID) in blocks of
// text shared by many: one allocation for a few hundred keys rather than
// one each.
type keyText struct{ b strings.Builder }

// keyBlock is the size of a block of keys.
const keyBlock = 16 << 10

func (kt *keyText) key(prefix, roleName, node string) string {
	n := len(prefix) + len(roleName)
	if node != "" {
		n += 1 + len(node)
	}
	if n > keyBlock/16 {
		return prefix + nodeRoleID(roleName, node)
	}
	if kt.b.Cap()-kt.b.Len() < n {
		// A new block; the keys already made keep the old one, which
		// the builder never writes again.
		kt.b = strings.Builder{}
		kt.b.Grow(keyBlock)
	}
	start := kt.b.Len()
	kt.b.WriteString(prefix)
	kt.b.WriteString(roleName)
	if node != "" {
		kt.b.WriteByte('@')
		kt.b.WriteString(node)
	}
	return kt.b.String()[start:]
}

// infoFor reads what build needs of def's role, once.
func (b *builder) infoFor(def *role.Def) (*defInfo, error) {
	m := def.Meta()
	info := &defInfo{meta: &roleMeta{Meta: m}, schema: &defSchema{inputs: def.Inputs(), pubs: def.Publishes()}}
	var err error
	if len(b.d.outPubs) > 0 {
		info.schema.aliases, err = b.d.aliasesOf(def, info.schema.pubs)
		info.meta.aliases = info.schema.aliases
	}
	var ok bool
	if info.typeSlot, ok = b.typeSlots[def.Out()]; !ok {
		info.typeSlot = len(b.typeSlots)
		b.typeSlots[def.Out()] = info.typeSlot
	}
	if info.roleSlot, ok = b.roleSlots[m.Name]; !ok {
		info.roleSlot = len(b.roleSlots)
		b.roleSlots[m.Name] = info.roleSlot
	}
	return info, err
}

// aliasesOf resolves the PublishOutput calls for def's role against its
// output type.
func (d *Deployment) aliasesOf(def *role.Def, tagged []role.Published) ([]outputAlias, error) {
	var out []outputAlias
	var errs *multierror.Error
	t := def.Out()
next:
	for _, op := range d.outPubs {
		if op.role != def.Name() {
			continue
		}
		where := fmt.Sprintf("graph: PublishOutput at %s:%d: output %s of role %q", op.file, op.line, op.field, op.role)
		var f reflect.StructField
		ok := t.Kind() == reflect.Struct
		if ok {
			f, ok = t.FieldByName(op.field)
			ok = ok && len(f.Index) == 1 && f.IsExported()
		}
		if !ok {
			var names []string
			for i := 0; t.Kind() == reflect.Struct && i < t.NumField(); i++ {
				if t.Field(i).IsExported() {
					names = append(names, t.Field(i).Name)
				}
			}
			errs = multierror.Append(errs, fmt.Errorf("%s: %v has no such exported field (it has: %s); name a field of the role's output by its Go name", where, t, strings.Join(names, ", ")))
			continue
		}
		for _, p := range tagged {
			if p.Attr != op.attr {
				continue
			}
			if p.Field != op.field {
				errs = multierror.Append(errs, fmt.Errorf("%s: the role already publishes attribute %q from output %s (its tag); publish another name, or change the tag", where, op.attr, p.Field))
			}
			continue next // already published under this name by its tag
		}
		for _, a := range out {
			if a.attr != op.attr {
				continue
			}
			if a.field != op.field {
				errs = multierror.Append(errs, fmt.Errorf("%s: attribute %q is already published from output %s of the same role; publish each attribute from one field", where, op.attr, a.field))
			}
			continue next
		}
		out = append(out, outputAlias{field: f.Name, attr: op.attr, index: f.Index[0], typ: f.Type})
	}
	return out, errs.ErrorOrNil()
}
