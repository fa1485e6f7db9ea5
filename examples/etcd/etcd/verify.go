package etcd

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/masonops/mason/role"
)

// Verify proves the cluster works: every member is started and answers over
// mutual TLS with the operator's certificate, and a write through the
// cluster reads back.
type Verify struct{}

// VerifyIn is every member and the operator's certificate.
type VerifyIn struct {
	Members  role.All[MemberOut]
	Operator role.One[OperatorOut]
}

// VerifyOut is the verified cluster.
type VerifyOut struct {
	Members   int
	Endpoints []string
}

// Meta implements role.Role.
func (Verify) Meta() role.Meta {
	return role.Meta{Name: "etcd-verify", Version: "1", Scope: role.ScopeService,
		Doc: "checks membership and health, writes and reads a key with the operator's certificate"}
}

// Run implements role.Role.
func (Verify) Run(ctx context.Context, rc *role.Context, in VerifyIn) (VerifyOut, error) {
	var endpoints []string
	for _, m := range in.Members {
		endpoints = append(endpoints, m.Value.ClientURL)
	}
	cert, err := tls.LoadX509KeyPair(in.Operator.Value.CertFile, in.Operator.Value.KeyFile)
	if err != nil {
		return VerifyOut{}, fmt.Errorf("loading the operator certificate: %w", err)
	}
	ca, err := readFile(in.Operator.Value.CAFile)
	if err != nil {
		return VerifyOut{}, err
	}
	tlsCfg, err := ClientTLS(cert, ca)
	if err != nil {
		return VerifyOut{}, err
	}
	cli, err := Dial(endpoints, tlsCfg)
	if err != nil {
		return VerifyOut{}, err
	}
	defer cli.Close()

	wait := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(90*time.Second)), ctx)
	err = backoff.Retry(func() error {
		err := healthy(ctx, cli, endpoints)
		if err != nil {
			rc.Progress("waiting for the cluster: %s", strings.TrimPrefix(err.Error(), errNotHealthy.Error()+": "))
		}
		return err
	}, wait)
	if err != nil {
		return VerifyOut{}, err
	}
	key := "mason/verify/" + rc.Deployment()
	val := fmt.Sprintf("%d members", len(endpoints))
	if err := writeAndRead(ctx, cli, key, val); err != nil {
		return VerifyOut{}, err
	}
	rc.Log().Info("verified write and read", "key", key, "members", len(endpoints))
	return VerifyOut{Members: len(endpoints), Endpoints: endpoints}, nil
}

// healthy checks that the member list has exactly these started members and
// that each endpoint answers a status request.
func healthy(ctx context.Context, cli *clientv3.Client, endpoints []string) error {
	cctx, cancel := withTimeout(ctx)
	defer cancel()
	list, err := cli.MemberList(cctx)
	if err != nil {
		return fmt.Errorf("%w: member list: %v", errNotHealthy, err)
	}
	started := 0
	for _, m := range list.Members {
		if m.Name != "" {
			started++
		}
	}
	if started != len(endpoints) || len(list.Members) != len(endpoints) {
		return fmt.Errorf("%w: %d members listed, %d started, want %d", errNotHealthy, len(list.Members), started, len(endpoints))
	}
	for _, ep := range endpoints {
		if _, err := cli.Status(cctx, ep); err != nil {
			return fmt.Errorf("%w: %s: %v", errNotHealthy, ep, err)
		}
	}
	return nil
}
