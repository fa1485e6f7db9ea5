package dockerapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// APIVersion is the Engine API version the client speaks.
const APIVersion = "v1.41"

// Port is the engine's mutual-TLS API port (Docker's convention).
const Port = 2376

// Client talks to one engine. It is safe for concurrent use.
type Client struct {
	host string // host:port
	hc   *http.Client
}

// New returns a client of the engine at host (an address or host:port;
// the port defaults to [Port]). tlsCfg must present a client certificate
// the engine trusts and verify the engine's certificate.
func New(host string, tlsCfg *tls.Config) *Client {
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, strconv.Itoa(Port))
	}
	return &Client{
		host: host,
		hc: &http.Client{Transport: &http.Transport{
			TLSClientConfig:     tlsCfg,
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
		}},
	}
}

// Host returns the engine's host:port.
func (c *Client) Host() string { return c.host }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Error is an error answer of the engine.
type Error struct {
	// Status is the HTTP status: 404 no such object, 406 the node is not
	// in a swarm, 409 conflict, 503 the node is not a (reachable) manager.
	Status  int
	Method  string
	Path    string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("docker engine: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// StatusOf returns the engine's HTTP status in err, or 0 when err is not an
// engine answer (a connection failure, a timeout).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether the engine answered 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, out any) error {
	u := url.URL{Scheme: "https", Host: c.host, Path: "/" + APIVersion + path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("docker engine: %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("docker engine at %s: %s %s: %w", c.host, method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("docker engine at %s: %s %s: reading the answer: %w", c.host, method, path, err)
	}
	if resp.StatusCode >= 300 {
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &m) != nil || m.Message == "" {
			m.Message = string(bytes.TrimSpace(raw))
		}
		return &Error{Status: resp.StatusCode, Method: method, Path: path, Message: m.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("docker engine at %s: %s %s: decoding the answer: %w", c.host, method, path, err)
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, "", out)
}

func (c *Client) post(ctx context.Context, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("docker engine: POST %s: encoding the request: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, http.MethodPost, path, q, body, "application/json", out)
}

// Ping checks that the engine answers.
func (c *Client) Ping(ctx context.Context) error {
	u := url.URL{Scheme: "https", Host: c.host, Path: "/_ping"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("docker engine at %s: ping: %w", c.host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &Error{Status: resp.StatusCode, Method: "GET", Path: "/_ping", Message: resp.Status}
	}
	return nil
}

// Info returns the engine's description, its swarm state included.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, c.get(ctx, "/info", nil, &i)
}

// SwarmInit makes the engine the first manager of a new swarm and returns
// its node ID.
func (c *Client) SwarmInit(ctx context.Context, req InitRequest) (string, error) {
	var id string
	return id, c.post(ctx, "/swarm/init", nil, req, &id)
}

// Swarm inspects the swarm (managers only); it carries the join tokens.
func (c *Client) Swarm(ctx context.Context) (Swarm, error) {
	var s Swarm
	return s, c.get(ctx, "/swarm", nil, &s)
}

// SwarmJoin joins the engine to a swarm. The engine answers once the node
// has joined, or after 20 seconds with an error while it goes on trying in
// the background: check Info afterwards.
func (c *Client) SwarmJoin(ctx context.Context, req JoinRequest) error {
	return c.post(ctx, "/swarm/join", nil, req, nil)
}

// SwarmLeave makes the engine leave its swarm; force is needed for a
// manager.
func (c *Client) SwarmLeave(ctx context.Context, force bool) error {
	return c.post(ctx, "/swarm/leave", url.Values{"force": {strconv.FormatBool(force)}}, nil, nil)
}

// Nodes lists the swarm's nodes (managers only).
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var ns []Node
	return ns, c.get(ctx, "/nodes", nil, &ns)
}

// Node inspects one node by ID or hostname (managers only).
func (c *Client) Node(ctx context.Context, id string) (Node, error) {
	var n Node
	return n, c.get(ctx, "/nodes/"+url.PathEscape(id), nil, &n)
}

// NodeUpdate replaces a node's spec; version is the node's current
// Version.Index (the update fails with 500/409 when it moved).
func (c *Client) NodeUpdate(ctx context.Context, id string, version uint64, spec NodeSpec) error {
	return c.post(ctx, "/nodes/"+url.PathEscape(id)+"/update", url.Values{"version": {strconv.FormatUint(version, 10)}}, spec, nil)
}

// NodeRemove removes a node from the swarm (managers only); without force
// the node must be down.
func (c *Client) NodeRemove(ctx context.Context, id string, force bool) error {
	return c.do(ctx, http.MethodDelete, "/nodes/"+url.PathEscape(id), url.Values{"force": {strconv.FormatBool(force)}}, nil, "", nil)
}

// ImageLoad loads an image archive (the `docker save` format) into the
// engine.
func (c *Client) ImageLoad(ctx context.Context, archive io.Reader) error {
	return c.do(ctx, http.MethodPost, "/images/load", url.Values{"quiet": {"1"}}, archive, "application/x-tar", nil)
}

// Image inspects an image by name or ID.
func (c *Client) Image(ctx context.Context, name string) (Image, error) {
	var i Image
	return i, c.get(ctx, "/images/"+name+"/json", nil, &i)
}

// ServiceCreate creates a service and returns its ID.
func (c *Client) ServiceCreate(ctx context.Context, spec ServiceSpec) (string, error) {
	var r struct {
		ID string `json:"ID"`
	}
	return r.ID, c.post(ctx, "/services/create", nil, spec, &r)
}

// Service inspects a service by ID or name.
func (c *Client) Service(ctx context.Context, id string) (Service, error) {
	var s Service
	return s, c.get(ctx, "/services/"+url.PathEscape(id), nil, &s)
}

// Services lists the swarm's services.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var ss []Service
	return ss, c.get(ctx, "/services", nil, &ss)
}

// ServiceUpdate replaces a service's spec at version.
func (c *Client) ServiceUpdate(ctx context.Context, id string, version uint64, spec ServiceSpec) error {
	return c.post(ctx, "/services/"+url.PathEscape(id)+"/update", url.Values{"version": {strconv.FormatUint(version, 10)}}, spec, nil)
}

// Tasks lists tasks matching filters ("service", "node", "desired-state").
func (c *Client) Tasks(ctx context.Context, filters map[string][]string) ([]Task, error) {
	q := url.Values{}
	if len(filters) > 0 {
		b, err := json.Marshal(filters)
		if err != nil {
			return nil, err
		}
		q.Set("filters", string(b))
	}
	var ts []Task
	return ts, c.get(ctx, "/tasks", q, &ts)
}
