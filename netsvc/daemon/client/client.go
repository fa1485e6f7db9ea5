package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/daemon/internal/wire"
)

// Client talks to a daemon's API. It implements netsvc.DNS, netsvc.IPAM and
// netsvc.LoadBalancer, so roles use it exactly like the embedded services.
type Client struct {
	base string
	hc   *http.Client
}

var (
	_ netsvc.DNS          = (*Client)(nil)
	_ netsvc.IPAM         = (*Client)(nil)
	_ netsvc.LoadBalancer = (*Client)(nil)
)

// New returns a client of the daemon whose API listens on addr
// (host:port). tlsCfg must present a client certificate the daemon trusts
// and verify the daemon's certificate: pki's Bundle.ClientTLS builds one
// from the controller's client certificate, and Authority.ClientConfig
// one that follows root rotation.
func New(addr string, tlsCfg *tls.Config) *Client {
	return &Client{
		base: "https://" + addr,
		hc: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil, TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4},
		},
	}
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// RemoteError is an error the daemon answered with. It matches the netsvc
// sentinel the daemon reported (errors.Is(err, netsvc.ErrExhausted) works
// as with the embedded services).
type RemoteError struct {
	Status  int
	Message string
	Code    string
}

// Error returns the daemon's message.
func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the matching netsvc sentinel, or nil.
func (e *RemoteError) Unwrap() error { return netsvc.FromCode(e.Code) }

func (c *Client) call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("daemon client: encoding %s request: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("daemon client: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon client: calling %s%s (is the daemon running, and are both certificates from the same pki service?): %w", c.base, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("daemon client: reading %s answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae wire.Error
		if json.Unmarshal(raw, &ae) != nil || ae.Error == "" {
			ae.Error = fmt.Sprintf("daemon: %s answered HTTP %d", path, resp.StatusCode)
		}
		return &RemoteError{Status: resp.StatusCode, Message: ae.Error, Code: ae.Code}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("daemon client: decoding %s answer: %w", path, err)
	}
	return nil
}

// AddZone makes the daemon authoritative for z (see authdns.Server.AddZone):
// adding a zone that exists keeps its records and serial.
func (c *Client) AddZone(ctx context.Context, z netsvc.Zone) error {
	return c.call(ctx, wire.DNSZone, z, nil)
}

// Upsert implements netsvc.DNS.
func (c *Client) Upsert(ctx context.Context, zone string, rs netsvc.RecordSet) error {
	return c.call(ctx, wire.DNSUpsert, wire.Upsert{Zone: zone, Set: rs}, nil)
}

// Delete implements netsvc.DNS.
func (c *Client) Delete(ctx context.Context, zone, name string, typ netsvc.RRType) error {
	return c.call(ctx, wire.DNSDelete, wire.Delete{Zone: zone, Name: name, Type: typ}, nil)
}

// Records implements netsvc.DNS.
func (c *Client) Records(ctx context.Context, zone string) ([]netsvc.RecordSet, error) {
	var out []netsvc.RecordSet
	return out, c.call(ctx, wire.DNSRecords, wire.Name{Name: zone}, &out)
}

// AddRange implements netsvc.IPAM.
func (c *Client) AddRange(ctx context.Context, r netsvc.Range) error {
	return c.call(ctx, wire.IPAMRange, r, nil)
}

// Allocate implements netsvc.IPAM.
func (c *Client) Allocate(ctx context.Context, req netsvc.Request) (netsvc.Allocation, error) {
	var out netsvc.Allocation
	return out, c.call(ctx, wire.IPAMAllocate, req, &out)
}

// Release implements netsvc.IPAM.
func (c *Client) Release(ctx context.Context, rangeName, owner string) error {
	return c.call(ctx, wire.IPAMRelease, wire.Release{Range: rangeName, Owner: owner}, nil)
}

// Allocations implements netsvc.IPAM.
func (c *Client) Allocations(ctx context.Context, rangeName string) ([]netsvc.Allocation, error) {
	var out []netsvc.Allocation
	return out, c.call(ctx, wire.IPAMAllocations, wire.Name{Name: rangeName}, &out)
}

// EnsureFrontend implements netsvc.LoadBalancer.
func (c *Client) EnsureFrontend(ctx context.Context, f netsvc.Frontend) error {
	return c.call(ctx, wire.LBFrontend, f, nil)
}

// DeleteFrontend implements netsvc.LoadBalancer.
func (c *Client) DeleteFrontend(ctx context.Context, name string) error {
	return c.call(ctx, wire.LBFrontendDelete, wire.Name{Name: name}, nil)
}

// SetBackends implements netsvc.LoadBalancer.
func (c *Client) SetBackends(ctx context.Context, frontend string, bs []netsvc.Backend) error {
	if bs == nil {
		bs = []netsvc.Backend{}
	}
	return c.call(ctx, wire.LBBackends, wire.Backends{Frontend: frontend, Backends: bs}, nil)
}

// AddBackend implements netsvc.LoadBalancer.
func (c *Client) AddBackend(ctx context.Context, frontend string, b netsvc.Backend) error {
	return c.call(ctx, wire.LBBackendAdd, wire.Backend{Frontend: frontend, Backend: b}, nil)
}

// RemoveBackend implements netsvc.LoadBalancer.
func (c *Client) RemoveBackend(ctx context.Context, frontend, addr string) error {
	return c.call(ctx, wire.LBBackendRemove, wire.Backend{Frontend: frontend, Backend: netsvc.Backend{Addr: addr}}, nil)
}

// Status implements netsvc.LoadBalancer.
func (c *Client) Status(ctx context.Context, frontend string) (netsvc.FrontendStatus, error) {
	var out netsvc.FrontendStatus
	return out, c.call(ctx, wire.LBStatus, wire.Name{Name: frontend}, &out)
}

// IsRemote reports whether err came from the daemon's answer (as opposed to
// failing to reach it).
func IsRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}
