package swarm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/masonops/mason/role"
)

// Endpoint waits until the demo service's task on the node answers HTTP
// on the node's address with the node's name, and outputs that address:
// the load balancer's backends are every node's Endpoint output.
type Endpoint struct{}

// EndpointIn is the node's membership and the service.
type EndpointIn struct {
	Member  role.Same[MemberOut]
	Service role.One[ServiceOut]
}

// EndpointOut is a node that serves the demo service.
type EndpointOut struct {
	Node string
	Addr string // IP:port
}

// Meta implements role.Role.
func (Endpoint) Meta() role.Meta {
	return role.Meta{Name: "demo-endpoint", Version: "1", Doc: "waits until the node's task of the demo service answers"}
}

// Run implements role.Role.
func (Endpoint) Run(ctx context.Context, rc *role.Context, in EndpointIn) (EndpointOut, error) {
	addr := hostPort(in.Member.Value.EngineIP, in.Service.Value.Port)
	name := rc.Node().Name
	err := poll(ctx, 90*time.Second, func() error { return answers(ctx, addr, name) })
	if err != nil {
		return EndpointOut{}, fmt.Errorf("service %s on %s: %w", in.Service.Value.Name, name, err)
	}
	return EndpointOut{Node: name, Addr: addr}, nil
}

// Check reports drift when the task does not answer.
func (Endpoint) Check(ctx context.Context, rc *role.Context, _ EndpointIn, last EndpointOut) (string, error) {
	if err := steady(ctx, func(ctx context.Context) error { return answers(ctx, last.Addr, last.Node) }); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

var plainHTTP = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// answers checks that http://addr/ answers with want.
func answers(ctx context.Context, addr, want string) error {
	got, err := Get(ctx, "http://"+addr+"/")
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("http://%s/ answered %q, not %q", addr, got, want)
	}
	return nil
}

// Get fetches url with a new connection and returns the body, trimmed.
func Get(ctx context.Context, url string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("%s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}
