package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/masonops/mason/store"
)

// Options configure [Open].
type Options struct {
	// Endpoints are the cluster's client URLs, e.g.
	// "https://10.0.0.1:2379". Give every member's: the client fails over
	// between them.
	Endpoints []string

	// Prefix is the namespace every key of this Store lives under, e.g.
	// "mason/prod/". Deployments sharing one etcd cluster must use prefixes
	// that are not prefixes of each other; ending them with "/" makes that
	// easy. Empty means the whole keyspace.
	Prefix string

	// TLS, when set, is used for every connection to the cluster: RootCAs
	// must hold the cluster's CA and, when the cluster requires client
	// certificates (--client-cert-auth), Certificates or
	// GetClientCertificate this client's certificate. Endpoints must then
	// use https://.
	TLS *tls.Config

	// DialTimeout bounds how long Open waits for the cluster to answer.
	// Zero means 5s.
	DialTimeout time.Duration

	// Logger receives the etcd client's own log lines; nil discards them.
	Logger *zap.Logger

	// MaxTxnOps is the cluster's --max-txn-ops: the most writes, and
	// separately the most conditions, one Txn may hold. Zero means etcd's
	// default, 128. Store.MaxTxnOps reports it, so that writers which
	// batch (graph's journal) split their batches to fit.
	MaxTxnOps int

	// MaxRequestBytes is the cluster's --max-request-bytes. Zero means
	// etcd's default, 1.5 MiB. Store.MaxTxnBytes reports two thirds of it
	// as the bytes of keys and values one Txn may carry, leaving the rest
	// for the request's framing.
	MaxRequestBytes int
}

// DefaultMaxTxnOps is etcd's default --max-txn-ops.
const DefaultMaxTxnOps = 128

// DefaultMaxRequestBytes is etcd's default --max-request-bytes.
const DefaultMaxRequestBytes = 1536 * 1024

// Store is a [store.Store] kept in an etcd cluster: the portable store
// over this package's driver, with etcd's limits ([store.TxnLimiter]) and
// its client. It is safe for concurrent use.
type Store struct {
	*store.Portable
	d        *driver
	maxOps   int
	maxBytes int
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.TxnLimiter = (*Store)(nil)
)

// driver is the store.Driver over an etcd client: every key it sees is
// full (the Store's prefix included).
type driver struct {
	cli   *clientv3.Client
	owned bool // Close closes cli

	ctx    context.Context // ended by Close; stops watches
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch goroutines

	mu     sync.RWMutex // guards closed, and wg.Add against Close's wg.Wait
	closed bool
}

// Open connects to the etcd cluster at opts.Endpoints and checks that it
// answers a linearizable read (so it has a leader) before returning.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcdstore: no endpoints given (set Options.Endpoints to the cluster's client URLs)")
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	lg := opts.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		TLS:         opts.TLS,
		Logger:      lg,
		// Keep-alive pings notice a dead member in seconds instead of
		// waiting for TCP to give up.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Context:              context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connecting to %v: %w", opts.Endpoints, err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	probe := opts.Prefix
	if probe == "" {
		probe = "\x00" // etcd refuses an empty key
	}
	if _, err := cli.Get(pctx, probe, clientv3.WithCountOnly()); err != nil {
		_ = cli.Close()
		if opts.TLS != nil {
			// gRPC reports only the timeout; the handshake says why.
			if herr := probeTLS(ctx, opts.Endpoints, opts.TLS); herr != nil {
				return nil, fmt.Errorf("etcdstore: etcd at %v did not answer within %v: %w (%v; check Options.TLS: RootCAs must hold the cluster's CA, and the client certificate must come from the CA the cluster trusts)", opts.Endpoints, opts.DialTimeout, err, herr)
			}
		}
		return nil, fmt.Errorf("etcdstore: etcd at %v did not answer within %v: %w (check the endpoints, that the cluster has a leader, and the TLS settings)", opts.Endpoints, opts.DialTimeout, err)
	}
	s := New(cli, opts.Prefix)
	s.d.owned = true
	if opts.MaxTxnOps > 0 {
		s.maxOps = opts.MaxTxnOps
	}
	if opts.MaxRequestBytes > 0 {
		s.maxBytes = opts.MaxRequestBytes * 2 / 3
	}
	return s, nil
}

// New wraps an etcd client the caller already has; every key lives under
// prefix (see Options.Prefix). Close does not close cli; the caller does,
// after closing the Store.
func New(cli *clientv3.Client, prefix string) *Store {
	ctx, cancel := context.WithCancel(context.Background())
	d := &driver{cli: cli, ctx: ctx, cancel: cancel}
	return &Store{Portable: store.New(d, store.WithPrefix(prefix)), d: d, maxOps: DefaultMaxTxnOps, maxBytes: DefaultMaxRequestBytes * 2 / 3}
}

// MaxTxnOps implements [store.TxnLimiter]: the most writes (and,
// separately, the most conditions) one Txn may hold on this cluster:
// Options.MaxTxnOps, or etcd's default. A larger Txn fails with etcd's
// "too many operations in txn request".
func (s *Store) MaxTxnOps() int { return s.maxOps }

// MaxTxnBytes implements [store.TxnLimiter]: the key and value bytes one
// Txn may carry, two thirds of the cluster's request limit
// (Options.MaxRequestBytes, or etcd's default 1.5 MiB).
func (s *Store) MaxTxnBytes() int { return s.maxBytes }

// Client returns the underlying etcd client, for what the store contract
// does not cover (cluster status, the concurrency package). Keys written
// through it are not namespaced.
func (s *Store) Client() *clientv3.Client { return s.d.cli }

func entry(kv *mvccpb.KeyValue) store.Entry {
	v := kv.Value
	if v == nil {
		v = []byte{}
	}
	return store.Entry{
		Key:      string(kv.Key),
		Value:    v,
		Revision: kv.ModRevision,
		Lease:    store.LeaseID(kv.Lease),
	}
}

// begin fails once the store is closed. It does not hold the store open
// for the call: Close closes the client under a running call, which then
// fails with ErrClosed (see wrap).
func (s *driver) begin(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

// wrap turns an etcd client error into the store's: lease and compaction
// errors match the store sentinels, and an error caused by Close is
// ErrClosed.
func (s *driver) wrap(what string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("etcdstore: %s: %w", what, store.ErrLeaseNotFound)
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("etcdstore: %s: %w (the cluster compacted that history; re-list and watch from the new revision)", what, store.ErrCompacted)
	case s.ctx.Err() != nil:
		return fmt.Errorf("etcdstore: %s: %w", what, store.ErrClosed)
	}
	return fmt.Errorf("etcdstore: %s: %w", what, err)
}

func (s *driver) Get(ctx context.Context, key string) (store.Entry, error) {
	if err := s.begin(ctx); err != nil {
		return store.Entry{}, err
	}
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return store.Entry{}, s.wrap(fmt.Sprintf("get %q", key), err)
	}
	if len(resp.Kvs) == 0 {
		return store.Entry{}, fmt.Errorf("%w: %q", store.ErrNotFound, key)
	}
	return entry(resp.Kvs[0]), nil
}

// listPage bounds the keys one List round trip returns, so a large listing
// does not become one huge gRPC message.
const listPage = 1000

// List reads a listing larger than one page in pages pinned to the first
// page's revision, so it is still one consistent snapshot.
func (s *driver) List(ctx context.Context, prefix string) ([]store.Entry, int64, error) {
	if err := s.begin(ctx); err != nil {
		return nil, 0, err
	}
	from := prefix
	end := clientv3.GetPrefixRangeEnd(from)
	if from == "" {
		from = "\x00" // etcd's spelling of "the first key"
	}
	var (
		out []store.Entry
		rev int64
	)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, 0, s.wrap(fmt.Sprintf("list %q", prefix), err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out = append(out, entry(kv))
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Txn is one etcd transaction; store.Portable has checked the ops.
func (s *driver) Txn(ctx context.Context, ops []store.Op) (int64, error) {
	var (
		cmps    []clientv3.Cmp
		writes  []clientv3.Op
		reads   []clientv3.Op // Else: read back the checked keys
		checked []store.Op
	)
	for _, op := range ops {
		k := op.Key
		if op.Check {
			if op.Rev == 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", op.Rev))
			}
			reads = append(reads, clientv3.OpGet(k, clientv3.WithKeysOnly()))
			checked = append(checked, op)
		}
		switch op.Kind {
		case store.OpPut:
			var po []clientv3.OpOption
			if op.Lease != 0 {
				po = append(po, clientv3.WithLease(clientv3.LeaseID(op.Lease)))
			}
			writes = append(writes, clientv3.OpPut(k, string(op.Value), po...))
		case store.OpDelete:
			writes = append(writes, clientv3.OpDelete(k))
		}
	}

	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(writes...).Else(reads...).Commit()
	if err != nil {
		return 0, s.wrap(describe(ops), err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for i, op := range checked {
		var have int64
		if r := resp.Responses[i].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			have = r.Kvs[0].ModRevision
		}
		if have != op.Rev {
			return 0, &store.ConflictError{Key: op.Key, Want: op.Rev, Have: have}
		}
	}
	// Unreachable unless etcd and this code disagree on the comparisons.
	return 0, fmt.Errorf("etcdstore: %s: etcd refused the transaction but every condition holds on re-read: %w", describe(ops), store.ErrConflict)
}

// describe names a transaction in errors by its first keys.
func describe(ops []store.Op) string {
	var keys []string
	for i, op := range ops {
		if i == 3 {
			keys = append(keys, fmt.Sprintf("and %d more", len(ops)-3))
			break
		}
		keys = append(keys, fmt.Sprintf("%q", op.Key))
	}
	return "transaction on " + strings.Join(keys, ", ")
}

// Grant counts TTLs in whole seconds, as etcd does: ttl is rounded up,
// and the cluster may raise it to its minimum lease TTL.
func (s *driver) Grant(ctx context.Context, ttl time.Duration) (store.LeaseID, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return 0, s.wrap(fmt.Sprintf("granting a %v lease", ttl), err)
	}
	return store.LeaseID(resp.ID), nil
}

// KeepAlive is one KeepAliveOnce round trip.
func (s *driver) KeepAlive(ctx context.Context, id store.LeaseID) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if _, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(id)); err != nil {
		return s.wrap(fmt.Sprintf("renewing lease %x", int64(id)), err)
	}
	return nil
}

func (s *driver) Revoke(ctx context.Context, id store.LeaseID) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil {
		return s.wrap(fmt.Sprintf("revoking lease %x", int64(id)), err)
	}
	return nil
}

// Close ends every watch, waits for their goroutines, and closes the
// client if [Open] made it, which makes calls still running fail with
// [store.ErrClosed]. With a client passed to [New], running calls finish
// normally.
func (s *driver) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.owned {
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("etcdstore: closing the client: %w", err)
		}
	}
	return nil
}

// newBackoff paces watch resumption after the cluster cut a watch.
func newBackoff(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0 // until ctx ends: a watch outlives outages
	return backoff.WithContext(b, ctx)
}

// probeTLS does a TLS handshake with each endpoint and returns the first
// failure, for Open's error message. With TLS 1.3 a server rejects a client
// certificate only after the handshake, so it also waits briefly for the
// server's alert.
func probeTLS(ctx context.Context, endpoints []string, cfg *tls.Config) error {
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			continue
		}
		c := cfg.Clone()
		if c.ServerName == "" {
			c.ServerName = u.Hostname()
		}
		c.NextProtos = []string{"h2"}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: c}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := d.DialContext(dctx, "tcp", u.Host)
		cancel()
		if err != nil {
			return fmt.Errorf("TLS handshake with %s failed: %w", u.Host, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("TLS session with %s refused: %w", u.Host, err)
		}
	}
	return nil
}
