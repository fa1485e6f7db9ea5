package deploy

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// Destroyed is what Destroy removed.
type Destroyed struct {
	// Nodes are the names of the nodes deleted.
	Nodes []string
	// Records counts the state records removed.
	Records int
	// TornDown says the provider's own resources (a lab's bridge, rule and
	// directory) were removed too, because no node was left in it.
	TornDown bool
}

// Destroy removes what the deployment created: its nodes (those it wants
// and those stamped with its identity; nodes already gone are fine), then,
// when the provider holds no node any more and can tear itself down, the
// provider's own resources, and last the deployment's records in the state
// (journal, claims, identity, locks). It may be run again after a partial
// failure. The deployment must have been opened with Purpose Destroy.
func (d *Deployment) Destroy(ctx context.Context) (Destroyed, error) {
	var out Destroyed
	if d.o.Purpose != Destroy {
		return out, errors.New("deploy: Destroy needs a deployment opened for Destroy")
	}
	if p := d.o.Provider; p != nil {
		errs := make([]error, len(d.nodes))
		var g errgroup.Group
		g.SetLimit(4)
		for i, n := range d.nodes {
			g.Go(func() error {
				if err := p.Delete(ctx, n.ID); err != nil {
					errs[i] = &NodeError{Node: n.Name, Err: err}
				}
				return nil
			})
		}
		_ = g.Wait()
		for i, n := range d.nodes {
			if errs[i] == nil {
				out.Nodes = append(out.Nodes, n.Name)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return out, fmt.Errorf("deploy: destroying %s (run it again to retry): %w", d.o.Name, err)
		}
		d.nodes = nil
		var td Teardown
		if p.As(&td) {
			left, err := p.List(ctx)
			if err != nil {
				return out, fmt.Errorf("deploy: destroying %s: listing what is left in provider %s: %w", d.o.Name, p.Name(), err)
			}
			if len(left) == 0 {
				if err := td.Teardown(ctx); err != nil {
					return out, fmt.Errorf("deploy: destroying %s: tearing down provider %s (run it again to retry): %w", d.o.Name, p.Name(), err)
				}
				out.TornDown = true
			}
		}
	}
	for _, prefix := range []string{graphPrefix(d.o.Name), Key(d.o.Name), "mason/lock/nodes/" + d.o.Name} {
		ents, _, err := d.o.Store.List(ctx, prefix)
		if err != nil {
			return out, fmt.Errorf("deploy: listing the records of %s in %s: %w", d.o.Name, where(d.o), err)
		}
		for _, e := range ents {
			if prefix == "mason/lock/nodes/"+d.o.Name && e.Key != prefix {
				continue // another deployment whose name starts like this one
			}
			if err := d.o.Store.Delete(ctx, e.Key); err != nil {
				return out, fmt.Errorf("deploy: forgetting %s in %s: %w", d.o.Name, where(d.o), err)
			}
			out.Records++
		}
	}
	d.recorded = false
	return out, nil
}
