package kube

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/role"
)

// Frontend is the name of the API servers' load-balancer frontend.
const Frontend = "kube-api"

// APIEndpoint creates the API servers' front door before any of them
// exists: the load balancer's frontend (its backends come later, from
// APILoadBalancer) and the DNS name every kubeconfig points at.
type APIEndpoint struct{}

// APIEndpointIn says where the frontend listens.
type APIEndpointIn struct {
	Addr   string `attr:"kubernetes.lb_addr"`
	Port   int    `attr:"kubernetes.api_port"`
	Domain string `attr:"kubernetes.domain"`
	LB     role.Uses[netsvc.LoadBalancer]
	DNS    role.Uses[netsvc.DNS]
}

// APIEndpointOut is the API's address as clients use it.
type APIEndpointOut struct {
	Name string     // api.<domain>
	Addr netip.Addr // the load balancer's address
	Port int
	URL  string // https://api.<domain>:6443
}

// Meta implements role.Role.
func (APIEndpoint) Meta() role.Meta {
	return role.Meta{Name: "kube-api-endpoint", Version: "1", Scope: role.ScopeService,
		Doc: "creates the API load balancer's frontend and its DNS name"}
}

// Run implements role.Role.
func (APIEndpoint) Run(ctx context.Context, rc *role.Context, in APIEndpointIn) (APIEndpointOut, error) {
	addr, err := netip.ParseAddr(in.Addr)
	if err != nil {
		return APIEndpointOut{}, fmt.Errorf("kubernetes.lb_addr %q: %w", in.Addr, err)
	}
	lb, dns := in.LB.Value, in.DNS.Value
	listen := net.JoinHostPort(addr.String(), strconv.Itoa(in.Port))
	// Health: a TCP connect every half second, one failure takes a backend
	// out (dials that fail go on to the next backend anyway), two
	// successes bring it back.
	if err := lb.EnsureFrontend(ctx, netsvc.Frontend{Name: Frontend, Listen: listen, Algorithm: netsvc.RoundRobin,
		Health: netsvc.HealthCheck{Interval: 500 * time.Millisecond, Timeout: time.Second, Fall: 1, Rise: 2}}); err != nil {
		return APIEndpointOut{}, fmt.Errorf("load balancer frontend %s on %s: %w", Frontend, listen, err)
	}
	name := "api." + in.Domain
	if err := dns.Upsert(ctx, in.Domain, netsvc.RecordSet{Name: "api", Type: netsvc.TypeA, TTL: 30, Values: []string{addr.String()}}); err != nil {
		return APIEndpointOut{}, fmt.Errorf("DNS name %s: %w", name, err)
	}
	return APIEndpointOut{Name: name, Addr: addr, Port: in.Port, URL: "https://" + net.JoinHostPort(name, strconv.Itoa(in.Port))}, nil
}

// Check reports drift when the frontend is gone (a daemon that lost its
// state) or the name no longer resolves to it.
func (APIEndpoint) Check(ctx context.Context, rc *role.Context, in APIEndpointIn, last APIEndpointOut) (string, error) {
	if _, err := in.LB.Value.Status(ctx, Frontend); err != nil {
		return "load balancer frontend " + Frontend + " is gone", nil
	}
	return "", nil
}
