package deploy

import (
	"context"
	"fmt"
	"slices"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/provider"
)

// Leaving returns the provider's nodes of the deployment that it no longer
// wants (stamped with its identity, not in Options.Nodes): the nodes a
// plan removes.
func (d *Deployment) Leaving() []*provider.Node {
	want := map[string]bool{}
	for _, ns := range d.o.Nodes {
		want[ns.ID] = true
	}
	var out []*provider.Node
	for _, n := range d.nodes {
		if !want[n.ID] {
			out = append(out, n)
		}
	}
	return out
}

// PlanRemovals lets gd's plan remove the nodes that left: it names them
// to gd ([graph.Deployment.Leaving]), so their node-roles are undone on
// them, and deletes them from the provider once that is done
// ([graph.Deployment.DeleteNodesWith]).
func (d *Deployment) PlanRemovals(gd *graph.Deployment) {
	gd.Leaving(d.Leaving()...)
	gd.DeleteNodesWith(nodeDeleter{d})
}

type nodeDeleter struct{ d *Deployment }

// DeleteNode deletes the deployment's node called name from the provider;
// one the provider no longer has is already deleted.
func (nd nodeDeleter) DeleteNode(ctx context.Context, name string) error {
	d := nd.d
	i := slices.IndexFunc(d.nodes, func(n *provider.Node) bool { return n.Name == name })
	if i < 0 || d.o.Provider == nil {
		return nil
	}
	n := d.nodes[i]
	if err := d.o.Provider.Delete(ctx, n.ID); err != nil {
		return &NodeError{Node: name, Err: fmt.Errorf("deleting it from provider %s: %w", d.o.Provider.Name(), err)}
	}
	d.nodes = slices.Delete(d.nodes, i, i+1)
	return nil
}
