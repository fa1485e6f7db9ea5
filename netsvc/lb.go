package netsvc

import (
	"context"
	"time"
)

// LoadBalancer manages TCP frontends and the backends they spread
// connections over. Backend changes take effect for new connections at once
// and never cut established ones: a removed backend drains.
type LoadBalancer interface {
	// EnsureFrontend creates the frontend, or updates its settings when it
	// exists (its backends are kept). It listens as soon as it returns.
	EnsureFrontend(ctx context.Context, f Frontend) error
	// DeleteFrontend stops listening and closes the frontend's connections.
	DeleteFrontend(ctx context.Context, name string) error
	// SetBackends replaces the frontend's backends with bs; backends not in
	// bs drain.
	SetBackends(ctx context.Context, frontend string, bs []Backend) error
	// AddBackend adds b, or updates it when a backend with its address
	// exists.
	AddBackend(ctx context.Context, frontend string, b Backend) error
	// RemoveBackend takes the backend at addr out of rotation: it gets no
	// new connection, its established connections continue until they end
	// or the frontend's drain timeout passes.
	RemoveBackend(ctx context.Context, frontend, addr string) error
	// Status reports the frontend's backends and their health.
	Status(ctx context.Context, frontend string) (FrontendStatus, error)
}

// Algorithm chooses a backend for each new connection.
type Algorithm string

// Balancing algorithms.
const (
	// RoundRobin takes healthy backends in turn.
	RoundRobin Algorithm = "roundrobin"
	// LeastConn takes the healthy backend with the fewest open connections.
	LeastConn Algorithm = "leastconn"
)

// Frontend is a listening TCP address and how it balances.
type Frontend struct {
	// Name identifies the frontend ("kube-api").
	Name string `json:"name"`
	// Listen is the address to listen on, "127.0.0.1:6443" or a lab
	// address. Port 0 picks a free port; Status reports the one chosen.
	Listen string `json:"listen"`
	// Algorithm defaults to RoundRobin.
	Algorithm Algorithm `json:"algorithm,omitempty"`
	// Health configures active health checks.
	Health HealthCheck `json:"health"`
	// ConnectTimeout bounds dialing a backend; zero means 3s.
	ConnectTimeout time.Duration `json:"connect_timeout,omitempty"`
	// IdleTimeout closes a proxied connection after this long without
	// traffic in either direction; zero means 1h.
	IdleTimeout time.Duration `json:"idle_timeout,omitempty"`
	// DrainTimeout bounds how long a removed backend's connections may
	// continue; zero means 30s.
	DrainTimeout time.Duration `json:"drain_timeout,omitempty"`
}

// HealthCheck configures the active checks of a frontend's backends: a TCP
// connect, or an HTTP GET when HTTPPath is set (2xx and 3xx are healthy).
type HealthCheck struct {
	// Interval between checks of one backend; zero means 2s.
	Interval time.Duration `json:"interval,omitempty"`
	// Timeout of one check; zero means 1s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Fall consecutive failures mark a backend down; zero means 2.
	Fall int `json:"fall,omitempty"`
	// Rise consecutive successes mark it up again; zero means 2.
	Rise int `json:"rise,omitempty"`
	// HTTPPath, when set, makes the check an HTTP GET of this path.
	HTTPPath string `json:"http_path,omitempty"`
}

// Backend is a server a frontend forwards to.
type Backend struct {
	// Addr is host:port.
	Addr string `json:"addr"`
	// Name is an optional label ("api-1").
	Name string `json:"name,omitempty"`
}

// FrontendStatus is a snapshot of a frontend.
type FrontendStatus struct {
	Name string `json:"name"`
	// Listen is the address actually listened on.
	Listen   string          `json:"listen"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is a snapshot of one backend.
type BackendStatus struct {
	Backend
	// Healthy is the result of the health checks (new backends start
	// healthy until checks say otherwise).
	Healthy bool `json:"healthy"`
	// Draining is true for a removed backend that still has connections.
	Draining bool `json:"draining,omitempty"`
	// Active is the number of open proxied connections.
	Active int64 `json:"active"`
	// Total is the number of connections ever proxied to it.
	Total uint64 `json:"total"`
	// LastError is the last failed check or dial, empty when healthy.
	LastError string `json:"last_error,omitempty"`
}
