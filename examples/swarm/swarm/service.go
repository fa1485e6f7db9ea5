package swarm

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// Service runs the demo service: the demo image in global mode (one task
// on every node), its port published in host mode on each node. This
// kernel has no IPVS, so swarm's routing mesh (ingress publishing) cannot
// work here; mason's load balancer is the front door instead, and its
// backends are exactly the nodes that run a task ([LB]).
//
// It runs on the first manager (cluster scope) and converges the service
// by name: created when missing, updated when its spec differs, left alone
// otherwise.
type Service struct{}

// ServiceIn is the swarm's first manager.
type ServiceIn struct {
	Init    role.One[InitOut]
	Manager role.Same[MemberOut]
	Image   role.Same[ImageOut]
	Name    string `attr:"swarm.service"`
	Port    int    `attr:"swarm.service_port"`
	Issuer  role.Uses[pki.Issuer]
}

// ServiceOut is the running service.
type ServiceOut struct {
	ID    string
	Name  string
	Port  int
	Image string
}

// Meta implements role.Role.
func (Service) Meta() role.Meta {
	return role.Meta{Name: "demo-service", Version: "1", Scope: role.ScopeCluster,
		Doc: "runs the demo service in global mode, published in host mode on every node"}
}

// serviceSpec is the demo service's spec.
func serviceSpec(in ServiceIn) dockerapi.ServiceSpec {
	grace := int64(2 * time.Second)
	delay := int64(time.Second)
	return dockerapi.ServiceSpec{
		Name:   in.Name,
		Labels: map[string]string{DeploymentLabel: "demo"},
		Mode:   dockerapi.ServiceMode{Global: &struct{}{}},
		// A node whose engine has not loaded a new image yet fails its
		// task until it has; swarm retries it, and the update goes on
		// instead of pausing.
		UpdateConfig: &dockerapi.UpdateConfig{Parallelism: 1, FailureAction: "continue", Order: "stop-first"},
		TaskTemplate: dockerapi.TaskSpec{
			ContainerSpec: dockerapi.ContainerSpec{
				Image:           in.Image.Value.Tag,
				Env:             []string{"NODE={{.Node.Hostname}}"},
				StopGracePeriod: &grace,
			},
			RestartPolicy: &dockerapi.RestartPolicy{Condition: "any", Delay: &delay},
		},
		EndpointSpec: &dockerapi.EndpointSpec{Ports: []dockerapi.PortConfig{{
			Protocol: "tcp", TargetPort: uint32(in.Port), PublishedPort: uint32(in.Port), PublishMode: "host",
		}}},
	}
}

// Run implements role.Role.
func (Service) Run(ctx context.Context, rc *role.Context, in ServiceIn) (ServiceOut, error) {
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return ServiceOut{}, err
	}
	mgr, err := ourManager(ctx, e, joinReq{init: in.Init.Value, managers: []string{in.Manager.Value.EngineIP}})
	if err != nil {
		return ServiceOut{}, err
	}
	defer mgr.Close()
	want := serviceSpec(in)
	cur, err := mgr.Service(ctx, in.Name)
	switch {
	case dockerapi.IsNotFound(err):
		id, err := mgr.ServiceCreate(ctx, want)
		if err != nil {
			return ServiceOut{}, fmt.Errorf("creating service %s: %w", in.Name, err)
		}
		rc.Log().Info("created the demo service", "service", in.Name, "id", id)
		cur.ID = id
	case err != nil:
		return ServiceOut{}, err
	case !sameService(cur.Spec, want):
		if err := mgr.ServiceUpdate(ctx, cur.ID, cur.Version.Index, want); err != nil {
			return ServiceOut{}, fmt.Errorf("updating service %s: %w", in.Name, err)
		}
		rc.Log().Info("updated the demo service", "service", in.Name, "id", cur.ID)
	}
	return ServiceOut{ID: cur.ID, Name: in.Name, Port: in.Port, Image: in.Image.Value.Tag}, nil
}

// sameService compares the fields the role sets.
func sameService(have, want dockerapi.ServiceSpec) bool {
	h, w := have.TaskTemplate.ContainerSpec, want.TaskTemplate.ContainerSpec
	return have.Mode.Global != nil && h.Image == w.Image && reflect.DeepEqual(h.Env, w.Env) &&
		have.EndpointSpec != nil && reflect.DeepEqual(have.EndpointSpec.Ports, want.EndpointSpec.Ports)
}

// Check reports drift when the service is gone.
func (Service) Check(ctx context.Context, rc *role.Context, in ServiceIn, last ServiceOut) (string, error) {
	e, err := newEngines(ctx, in.Issuer.Value)
	if err != nil {
		return "", err
	}
	mgr, err := ourManager(ctx, e, joinReq{init: in.Init.Value, managers: []string{in.Manager.Value.EngineIP}})
	if err != nil {
		return "", nil // no manager answers: the engine and member roles say why
	}
	defer mgr.Close()
	if _, err := mgr.Service(ctx, last.Name); dockerapi.IsNotFound(err) {
		return "service " + last.Name + " is gone", nil
	}
	return "", nil
}
