package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/masonops/mason/internal/problems"
)

// LostStateError refuses a run whose state has no record of the
// deployment while the provider still holds the deployment's nodes: the
// state file was lost, emptied, replaced, or another one was named.
// Running on would start the deployment afresh over a live cluster (new
// certificates, a new cluster), so the run stops before it changes
// anything.
type LostStateError struct {
	Deployment string
	// Where names the state ("state file /var/lib/x/state.db").
	Where string
	// Missing: the state did not exist; Others: the deployments it records
	// instead (empty when it is empty).
	Missing bool
	Others  []string
	// Provider and Nodes name the nodes that still exist.
	Provider string
	Nodes    []string
	// DestroyCommand is the command that removes the nodes, if known.
	DestroyCommand string
}

// Error implements error.
func (e *LostStateError) Error() string {
	var found string
	switch {
	case e.Missing:
		found = "did not exist"
	case len(e.Others) > 0:
		found = "holds deployment " + strings.Join(e.Others, ", ") + " but not " + e.Deployment
	default:
		found = "is empty"
	}
	destroy := "destroy the deployment"
	if e.DestroyCommand != "" {
		destroy = "run " + e.DestroyCommand
	}
	return fmt.Sprintf("deploy: %s %s, but provider %s still holds %s of deployment %s (%s): running now would start it afresh over them (new certificates, a new cluster), so nothing was changed. "+
		"Restore the state from a backup (or name the right one) and run again; or, to start over, %s to remove the nodes first",
		e.Where, found, e.Provider, plural(len(e.Nodes), "node"), e.Deployment, problems.Nodes(e.Nodes), destroy)
}

func (d *Deployment) lost(ctx context.Context) error {
	e := &LostStateError{Deployment: d.o.Name, Where: where(d.o), Missing: d.o.Missing, DestroyCommand: d.o.DestroyCommand}
	if d.o.Provider != nil {
		e.Provider = d.o.Provider.Name()
	}
	for _, n := range d.nodes {
		e.Nodes = append(e.Nodes, n.Name)
	}
	sort.Slice(e.Nodes, func(i, j int) bool { return problems.Compare(e.Nodes[i], e.Nodes[j]) < 0 })
	if ents, _, err := d.o.Store.List(ctx, "mason/deployments/"); err == nil {
		seen := map[string]bool{}
		for _, en := range ents {
			name, _, _ := strings.Cut(strings.TrimPrefix(en.Key, "mason/deployments/"), "/")
			if name != d.o.Name && !seen[name] {
				seen[name] = true
				e.Others = append(e.Others, name)
			}
		}
	}
	if ents, _, err := d.o.Store.List(ctx, "mason/graph/"); err == nil {
		seen := map[string]bool{}
		for _, o := range e.Others {
			seen[o] = true
		}
		for _, en := range ents {
			name, _, _ := strings.Cut(strings.TrimPrefix(en.Key, "mason/graph/"), "/")
			if name != d.o.Name && !seen[name] {
				seen[name] = true
				e.Others = append(e.Others, name)
			}
		}
	}
	sort.Strings(e.Others)
	return e
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
