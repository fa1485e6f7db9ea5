package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/masonops/mason/pki"
	"github.com/masonops/mason/role"
)

// ControllerIdentity is the client certificate the controller uses to manage
// the cluster (member-add, health checks).
const ControllerIdentity = "mason-controller"

// controllerTLS returns the controller's client TLS config. The certificate
// comes from the pki store each time (Issue returns the stored one), so its
// key is never part of any role output or journal record.
func controllerTLS(ctx context.Context, rc *role.Context) (*tls.Config, error) {
	issuer, err := role.Lookup[pki.Issuer](rc.Services())
	if err != nil {
		return nil, err
	}
	b, err := issuer.Issue(ctx, Service, pki.Request{Kind: pki.Client, Identity: pki.Identity{Name: ControllerIdentity}})
	if err != nil {
		return nil, fmt.Errorf("controller client certificate: %w", err)
	}
	cert, err := b.TLSCertificate()
	if err != nil {
		return nil, err
	}
	return ClientTLS(cert, b.CAPEM)
}

// ClientTLS builds a client tls.Config that presents cert and trusts only
// the roots in caPEM.
func ClientTLS(cert tls.Certificate, caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("etcd: no CA certificate in the trust bundle")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Dial connects to the given client URLs with tlsCfg.
func Dial(endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: connecting to %v: %w", endpoints, err)
	}
	return cli, nil
}

// callTimeout bounds each request to the cluster.
const callTimeout = 5 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

// writeAndRead writes val at key through the cluster and reads it back.
// A member that was just restarted, or a leader election in progress, makes
// requests time out for a moment; like any etcd client it retries those,
// for at most a minute.
func writeAndRead(ctx context.Context, cli *clientv3.Client, key, val string) error {
	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(time.Minute)), ctx)
	return backoff.Retry(func() error {
		cctx, cancel := withTimeout(ctx)
		defer cancel()
		if _, err := cli.Put(cctx, key, val); err != nil {
			return fmt.Errorf("write through the cluster: %w", err)
		}
		got, err := cli.Get(cctx, key)
		if err != nil {
			return fmt.Errorf("read through the cluster: %w", err)
		}
		if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != val {
			return backoff.Permanent(fmt.Errorf("read back %q from %s, wrote %q", got.Kvs, key, val))
		}
		return nil
	}, wait)
}
