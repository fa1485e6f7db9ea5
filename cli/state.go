package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	etcdstore "github.com/masonops/mason/store/etcd"
)

// openState opens the store a --state value names:
//
//	mason.state, bolt:///var/lib/x.state   a bbolt file (the default)
//	etcd://h1:2379,h2:2379/prefix/         an etcd cluster, plain HTTP
//	etcds://h1:2379/prefix/?ca=ca.pem&cert=c.pem&key=k.pem   with TLS
func openState(ctx context.Context, state string) (store.Store, error) {
	switch {
	case strings.HasPrefix(state, "etcd://"), strings.HasPrefix(state, "etcds://"):
		u, err := url.Parse(state)
		if err != nil {
			return nil, fmt.Errorf("-state %q: %w; want etcd://host:2379,host2:2379/prefix/", state, err)
		}
		scheme := "http"
		var tc *tls.Config
		if u.Scheme == "etcds" {
			scheme = "https"
			if tc, err = etcdTLS(u.Query()); err != nil {
				return nil, fmt.Errorf("-state %q: %w", redact(u), err)
			}
		}
		var eps []string
		for _, h := range strings.Split(u.Host, ",") {
			if h != "" {
				eps = append(eps, scheme+"://"+h)
			}
		}
		if len(eps) == 0 {
			return nil, fmt.Errorf("-state %q names no etcd endpoint; want etcd://host:2379/prefix/", redact(u))
		}
		prefix := strings.TrimPrefix(u.Path, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: eps, Prefix: prefix, TLS: tc, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("opening state in etcd at %s: %w", strings.Join(eps, ","), err)
		}
		return st, nil
	case strings.HasPrefix(state, "bolt://"):
		state = strings.TrimPrefix(state, "bolt://")
	case strings.Contains(state, "://"):
		return nil, fmt.Errorf("-state %q: unknown scheme; use a file path, bolt://PATH or etcd://HOSTS/PREFIX", state)
	}
	st, err := bolt.Open(state, nil)
	if err != nil {
		return nil, fmt.Errorf("opening state file %s: %w", state, err)
	}
	return st, nil
}

func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.String()
}

func etcdTLS(q url.Values) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := q.Get("ca"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("reading etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s holds no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	if cert, key := q.Get("cert"), q.Get("key"); cert != "" || key != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("loading etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
