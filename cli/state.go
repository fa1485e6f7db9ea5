package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/mem"
)

// state is the store a -state value names, with what messages need.
type state struct {
	store.Store
	// where names it for people: "state file x.state", "etcd state at
	// etcd://h:2379/p/".
	where string
	// missing: the bbolt file did not exist before this command.
	missing bool
}

// openState opens the store a -state value names:
//
//	mason.state, bolt:///var/lib/x.state   a bbolt file (the default)
//	etcd://h1:2379,h2:2379/prefix/         an etcd cluster, plain HTTP
//	etcds://h1:2379/prefix/?ca=ca.pem&cert=c.pem&key=k.pem   with TLS
//
// A command that only reads (write false) does not create a missing bbolt
// file: it gets an empty store in memory. One that writes is told first,
// before anything is created, when the file's directory is missing or not
// writable.
func openState(ctx context.Context, loc string, write bool, owner string) (*state, error) {
	switch {
	case strings.HasPrefix(loc, "etcd://"), strings.HasPrefix(loc, "etcds://"):
		u, err := url.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("-state %q: %w; want etcd://host:2379,host2:2379/prefix/", loc, err)
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
		return &state{Store: st, where: "etcd state at " + redact(u)}, nil
	case strings.HasPrefix(loc, "bolt://"):
		loc = strings.TrimPrefix(loc, "bolt://")
	case strings.Contains(loc, "://"):
		return nil, fmt.Errorf("-state %q: unknown scheme; use a file path, bolt://PATH or etcd://HOSTS/PREFIX", loc)
	}
	where := "state file " + loc
	_, err := os.Stat(loc)
	missing := errors.Is(err, fs.ErrNotExist)
	switch {
	case err != nil && !missing:
		return nil, fmt.Errorf("%s: %w", where, err)
	case missing && !write:
		return &state{Store: mem.New(), where: where, missing: true}, nil
	case missing:
		dir := filepath.Dir(loc)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s: directory %s does not exist: create it, or name another -state; nothing was changed", where, dir)
		}
		if err := unix.Access(dir, unix.W_OK); err != nil {
			return nil, fmt.Errorf("%s: directory %s is not writable (%v): nothing was changed", where, dir, err)
		}
	case write:
		if err := unix.Access(loc, unix.R_OK|unix.W_OK); err != nil {
			return nil, fmt.Errorf("%s is not writable (%v): nothing was changed", where, err)
		}
	}
	st, err := bolt.Open(loc, &bolt.Options{Owner: owner})
	if errors.Is(err, store.ErrLocked) {
		return nil, err // names the file and its holder already
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", where, err)
	}
	return &state{Store: st, where: where, missing: missing}, nil
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
