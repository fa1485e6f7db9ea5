// Package memprovider is a provider driver whose nodes are records in
// memory, with transports that answer every command with success: for
// tests of the front end and of package deploy, where what matters is
// which nodes exist, not what runs on them. Real nodes come from
// provider/lab.
package memprovider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/masonops/mason/provider"
)

// Driver holds nodes in a map. It reports a capacity and can tear down,
// like the lab.
type Driver struct {
	// Cap is the most nodes it holds (the deploy.Capacity capability).
	Cap int
	// FailOn names a node whose creation fails.
	FailOn string

	mu        sync.Mutex
	nodes     map[string]*provider.Node
	creates   int
	teardowns int
}

// New returns an empty driver that holds at most capacity nodes.
func New(capacity int) *Driver {
	return &Driver{Cap: capacity, nodes: map[string]*provider.Node{}}
}

// Name implements provider.Driver.
func (d *Driver) Name() string { return "mem" }

// Capacity reports Cap.
func (d *Driver) Capacity() int { return d.Cap }

// Teardown counts its calls.
func (d *Driver) Teardown(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.teardowns++
	return nil
}

// Create implements provider.Driver.
func (d *Driver) Create(ctx context.Context, s provider.NodeSpec) (*provider.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.Name != "" && s.Name == d.FailOn {
		return nil, errors.New("no address left in subnet")
	}
	if n, ok := d.nodes[s.ID]; ok {
		return n, nil
	}
	d.creates++
	n := &provider.Node{ID: s.ID, Name: s.Name, Provider: "mem", State: provider.StateRunning, Labels: s.Labels,
		InterfaceAddr: netip.AddrFrom4([4]byte{10, 78, 0, byte(11 + len(d.nodes))}), Transport: okTransport{}}
	d.nodes[s.ID] = n
	return n, nil
}

// Get implements provider.Driver.
func (d *Driver) Get(ctx context.Context, id string) (*provider.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.nodes[id]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("node %s: %w", id, provider.ErrNotFound)
}

// List implements provider.Driver.
func (d *Driver) List(ctx context.Context) ([]*provider.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*provider.Node, 0, len(d.nodes))
	for _, n := range d.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *provider.Node) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Delete implements provider.Driver.
func (d *Driver) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.nodes, id)
	return nil
}

// Count is how many nodes it holds.
func (d *Driver) Count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.nodes)
}

// Creates is how many nodes it has made.
func (d *Driver) Creates() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.creates
}

// Teardowns is how many times Teardown was called.
func (d *Driver) Teardowns() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.teardowns
}

type okTransport struct{}

func (okTransport) Run(ctx context.Context, cmd provider.Command) (provider.Result, error) {
	return provider.Result{}, nil
}
func (okTransport) Put(ctx context.Context, path string, data io.Reader, opts provider.FileOptions) error {
	return nil
}
func (okTransport) Get(ctx context.Context, path string) ([]byte, error) { return nil, os.ErrNotExist }
