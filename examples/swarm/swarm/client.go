package swarm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/examples/swarm/dockerapi"
	daemonclient "github.com/masonops/mason/netsvc/daemon/client"
	"github.com/masonops/mason/pki"
)

// controllerBundle returns the controller's client certificate from
// service's authority. It comes from the pki store each time (Issue returns
// the stored one), so its key is never part of a role output.
func controllerBundle(ctx context.Context, issuer pki.Issuer, service string) (pki.Bundle, error) {
	b, err := issuer.Issue(ctx, service, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: ControllerName}})
	if err != nil {
		return pki.Bundle{}, fmt.Errorf("the controller's %s client certificate: %w", service, err)
	}
	return b, nil
}

// ClientTLS builds a client config that presents cert and trusts only the
// roots in caPEM.
func ClientTLS(cert tls.Certificate, caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("swarm: no CA certificate in the trust bundle")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// engines opens Engine API clients for the controller.
type engines struct{ tls *tls.Config }

func newEngines(ctx context.Context, issuer pki.Issuer) (*engines, error) {
	b, err := controllerBundle(ctx, issuer, DockerCA)
	if err != nil {
		return nil, err
	}
	cert, err := b.TLSCertificate()
	if err != nil {
		return nil, err
	}
	cfg, err := ClientTLS(cert, b.CAPEM)
	if err != nil {
		return nil, err
	}
	return &engines{tls: cfg}, nil
}

// at returns a client of the engine on host (an address).
func (e *engines) at(host string) *dockerapi.Client { return dockerapi.New(host, e.tls) }

// netsvcClient returns a client of the network services daemon d.
func netsvcClient(ctx context.Context, issuer pki.Issuer, d NetsvcdOut) (*daemonclient.Client, error) {
	b, err := controllerBundle(ctx, issuer, NetsvcCA)
	if err != nil {
		return nil, err
	}
	cfg, err := b.ClientTLS(d.ServerName)
	if err != nil {
		return nil, err
	}
	return daemonclient.New(d.API, cfg), nil
}

// poll calls f until it returns nil, a backoff.Permanent error, or max
// passes; its last error says what it was waiting for.
func poll(ctx context.Context, max time.Duration, f func() error) error {
	b := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(500*time.Millisecond), backoff.WithMaxElapsedTime(max)), ctx)
	return backoff.Retry(f, b)
}

// steady calls f (each call bounded by 3 seconds) until it succeeds, for
// up to 10 seconds: a drift check reports a service that does not answer
// only when it stays silent, not when a loaded machine answers late once.
func steady(ctx context.Context, f func(ctx context.Context) error) error {
	return poll(ctx, 10*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return f(cctx)
	})
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
