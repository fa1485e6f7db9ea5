package swarm

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// LB keeps the load balancer's frontend for the demo service on the
// service node, and its backends exactly the nodes whose task answers: its
// input is every node's [Endpoint] output, so a node that joins or leaves
// changes it — and nothing else — and the plan re-runs it with the reason
// ("input Backends changed: +w3"). Removed backends drain: connections in
// flight finish.
type LB struct{}

// LBIn is the daemon, the backends and the port.
type LBIn struct {
	Daemon   role.One[NetsvcdOut]
	Backends role.All[EndpointOut]
	Service  role.One[ServiceOut]
	Port     int `attr:"swarm.lb_port"`
	Issuer   role.Uses[pki.Issuer]
}

// LBOut is the frontend.
type LBOut struct {
	Frontend string
	Listen   string
	URL      string
	Backends []string // node names, sorted
}

// Meta implements role.Role.
func (LB) Meta() role.Meta {
	return role.Meta{Name: "swarm-lb", Version: "1", Scope: role.ScopeService,
		Doc: "keeps the L4 frontend of the demo service; its backends are the nodes that serve it"}
}

// Run implements role.Role.
func (LB) Run(ctx context.Context, rc *role.Context, in LBIn) (LBOut, error) {
	cli, err := netsvcClient(ctx, in.Issuer.Value, in.Daemon.Value)
	if err != nil {
		return LBOut{}, err
	}
	defer cli.Close()
	name := in.Service.Value.Name
	listen := hostPort(in.Daemon.Value.IP, in.Port)
	f := netsvc.Frontend{
		Name: name, Listen: listen, Algorithm: netsvc.RoundRobin,
		Health:         netsvc.HealthCheck{Interval: time.Second, Timeout: time.Second, Fall: 2, Rise: 1, HTTPPath: "/"},
		ConnectTimeout: time.Second, DrainTimeout: 10 * time.Second,
	}
	if err := cli.EnsureFrontend(ctx, f); err != nil {
		return LBOut{}, fmt.Errorf("frontend %s on %s: %w", name, listen, err)
	}
	var bs []netsvc.Backend
	var names []string
	for _, e := range in.Backends {
		bs = append(bs, netsvc.Backend{Addr: e.Value.Addr, Name: e.Node})
		names = append(names, e.Node)
	}
	if err := cli.SetBackends(ctx, name, bs); err != nil {
		return LBOut{}, fmt.Errorf("backends of %s: %w", name, err)
	}
	slices.Sort(names)
	rc.Log().Info("load balancer backends set", "frontend", name, "listen", listen, "backends", names)
	return LBOut{Frontend: name, Listen: listen, URL: "http://" + listen + "/", Backends: names}, nil
}

// Check reports drift when the frontend is gone or its backends differ.
func (LB) Check(ctx context.Context, rc *role.Context, in LBIn, last LBOut) (string, error) {
	cli, err := netsvcClient(ctx, in.Issuer.Value, in.Daemon.Value)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	var st netsvc.FrontendStatus
	if err := steady(ctx, func(ctx context.Context) (err error) { st, err = cli.Status(ctx, last.Frontend); return err }); err != nil {
		return "frontend " + last.Frontend + ": " + err.Error(), nil
	}
	var have []string
	for _, b := range st.Backends {
		if !b.Draining {
			have = append(have, b.Name)
		}
	}
	slices.Sort(have)
	if !slices.Equal(have, last.Backends) {
		return fmt.Sprintf("frontend %s has backends %v, not %v", last.Frontend, have, last.Backends), nil
	}
	return "", nil
}
