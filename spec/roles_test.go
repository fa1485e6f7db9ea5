package spec_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

// Small in-test roles shaped like an etcd cluster and a Swarm: they
// compute their outputs from their inputs and touch nothing.

type CAOut struct {
	CertPEM string `attr:"test.ca_pem"`
	Serial  string
}

type PeerURLOut struct{ URL string }

type MemberIn struct {
	Peers   role.All[PeerURLOut]
	Token   string        `attr:"test.token" default:"mason"`
	Port    int           `attr:"test.port" default:"2379"`
	CA      string        `attr:"test.ca_pem"`
	Timeout time.Duration `attr:"test.timeout" default:"5s"`
}

type MemberOut struct{ InitialCluster string }

type ManagerOut struct {
	WorkerToken attr.Secret[string] `attr:"swarm.join_token"`
	Addr        string
}

type WorkerIn struct {
	JoinToken attr.Secret[string] `attr:"swarm.join_token"`
	Labels    []string            `attr:"swarm.labels,optional"`
}

type WorkerOut struct{ Joined bool }

type AgentOut struct {
	Token attr.Secret[string] `attr:"swarm.join_token"`
}

type PingOut struct {
	Y string `attr:"test.ping"`
}
type PongOut struct {
	Y string `attr:"test.pong"`
}

var (
	caRole = role.Func(role.Meta{Name: "ca", Version: "1", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, _ struct{}) (CAOut, error) {
			return CAOut{CertPEM: "-----BEGIN CERTIFICATE----- test", Serial: "1"}, nil
		})
	peerURLRole = role.Func(role.Meta{Name: "peer-url", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (PeerURLOut, error) {
			return PeerURLOut{URL: "https://" + rc.Node().Name + ":2380"}, nil
		})
	memberRole = role.Func(role.Meta{Name: "member", Version: "3.5"},
		func(ctx context.Context, rc *role.Context, in MemberIn) (MemberOut, error) {
			var parts []string
			for _, p := range in.Peers {
				parts = append(parts, p.Node+"="+p.Value.URL)
			}
			return MemberOut{InitialCluster: strings.Join(parts, ",")}, nil
		})
	managerRole = role.Func(role.Meta{Name: "swarm-manager", Version: "1", Scope: role.ScopeCluster},
		func(ctx context.Context, rc *role.Context, _ struct{}) (ManagerOut, error) {
			return ManagerOut{WorkerToken: attr.Conceal("SWMTKN-test"), Addr: rc.Node().Name}, nil
		})
	workerRole = role.Func(role.Meta{Name: "swarm-worker", Version: "1"},
		func(ctx context.Context, rc *role.Context, in WorkerIn) (WorkerOut, error) {
			if in.JoinToken.Reveal() == "" {
				return WorkerOut{}, fmt.Errorf("no join token")
			}
			return WorkerOut{Joined: true}, nil
		})
	agentRole = role.Func(role.Meta{Name: "agent", Version: "1"},
		func(ctx context.Context, rc *role.Context, _ struct{}) (AgentOut, error) {
			return AgentOut{Token: attr.Conceal("agent-" + rc.Node().Name)}, nil
		})
	pingRole = role.Func(role.Meta{Name: "ping", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, in struct {
			X string `attr:"test.pong"`
		}) (PingOut, error) {
			return PingOut{Y: in.X}, nil
		})
	pongRole = role.Func(role.Meta{Name: "pong", Scope: role.ScopeService},
		func(ctx context.Context, rc *role.Context, in struct {
			X string `attr:"test.ping"`
		}) (PongOut, error) {
			return PongOut{Y: in.X}, nil
		})
)

var testDomain = attr.New[string]("test.domain").WithDoc("DNS domain of the nodes").WithDefault("mason.lab").
	WithValidation(func(s string) error {
		if strings.HasSuffix(s, ".") {
			return fmt.Errorf("write the domain without a trailing dot")
		}
		return nil
	})

func testRegistry() *spec.Registry {
	reg := spec.NewRegistry()
	if err := reg.Roles(role.Of(caRole), role.Of(peerURLRole), role.Of(memberRole), role.Of(managerRole), role.Of(workerRole), role.Of(agentRole), role.Of(pingRole), role.Of(pongRole)); err != nil {
		panic(err)
	}
	reg.Declare(testDomain)
	reg.Provider("static", func(ctx context.Context, s spec.Settings) (*provider.Provider, error) {
		return nil, fmt.Errorf("the static provider is not opened in tests")
	})
	reg.Service("dns", func(ctx context.Context, s spec.Settings, svcs *role.Services) error { return nil })
	return reg
}
