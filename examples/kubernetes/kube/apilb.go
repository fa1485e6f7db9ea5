package kube

import (
	"context"
	"fmt"
	"slices"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/role"
)

// APILoadBalancer puts every API server behind the load balancer's
// frontend. Its input is the aggregate of every APIServer output, so a
// new or removed API server re-runs it and nothing else.
type APILoadBalancer struct{}

// APILoadBalancerIn is every ready API server.
type APILoadBalancerIn struct {
	Servers  role.All[APIServerOut]
	Endpoint role.One[APIEndpointOut]
	LB       role.Uses[netsvc.LoadBalancer]
}

// APILoadBalancerOut lists the backends.
type APILoadBalancerOut struct {
	URL      string
	Backends []string
}

// Meta implements role.Role.
func (APILoadBalancer) Meta() role.Meta {
	return role.Meta{Name: "kube-api-lb", Version: "1", Scope: role.ScopeService,
		Doc: "sets the API load balancer's backends to every API server"}
}

// Run implements role.Role.
func (APILoadBalancer) Run(ctx context.Context, rc *role.Context, in APILoadBalancerIn) (APILoadBalancerOut, error) {
	lb := in.LB.Value
	var bs []netsvc.Backend
	out := APILoadBalancerOut{URL: in.Endpoint.Value.URL}
	for _, s := range in.Servers {
		bs = append(bs, netsvc.Backend{Addr: s.Value.Addr, Name: s.Node})
		out.Backends = append(out.Backends, s.Value.Addr)
	}
	if err := lb.SetBackends(ctx, Frontend, bs); err != nil {
		return APILoadBalancerOut{}, fmt.Errorf("setting the backends of %s: %w", Frontend, err)
	}
	return out, nil
}

// Check reports drift when the frontend's backends differ.
func (APILoadBalancer) Check(ctx context.Context, rc *role.Context, in APILoadBalancerIn, last APILoadBalancerOut) (string, error) {
	st, err := in.LB.Value.Status(ctx, Frontend)
	if err != nil {
		return "load balancer frontend " + Frontend + " is gone", nil
	}
	var have []string
	for _, b := range st.Backends {
		if !b.Draining {
			have = append(have, b.Addr)
		}
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(last.Backends))
	if !slices.Equal(have, want) {
		return fmt.Sprintf("load balancer backends are %v, want %v", have, want), nil
	}
	return "", nil
}
