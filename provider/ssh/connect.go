package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	gossh "golang.org/x/crypto/ssh"
)

// connect dials host as the first of users that accepts our keys, retrying
// with backoff while the machine does not answer.
func (inv *Inventory) connect(ctx context.Context, host Host, users []string) (*conn, string, error) {
	var got *conn
	var user string
	op := func() error {
		var authErrs []string
		for _, u := range users {
			c, err := inv.dial(ctx, host, u)
			if err == nil {
				got, user = c, u
				return nil
			}
			var hk *HostKeyError
			switch {
			case errors.As(err, &hk):
				return backoff.Permanent(err)
			case isAuthError(err):
				authErrs = append(authErrs, u)
				continue
			default:
				return err // network trouble: retry
			}
		}
		return backoff.Permanent(fmt.Errorf("none of the users %s accepted our keys on %s: check the users and authorized_keys", strings.Join(authErrs, ", "), host.Name))
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(inv.opts.ConnectRetry))
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return nil, "", fmt.Errorf("connect to %s (%s): %w", host.Name, hostPort(host), err)
	}
	return got, user, nil
}

func isAuthError(err error) bool {
	return strings.Contains(err.Error(), "unable to authenticate")
}

func hostPort(h Host) string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// dial makes one connection attempt as user, bounded by ConnectTimeout.
func (inv *Inventory) dial(ctx context.Context, host Host, user string) (*conn, error) {
	addr := hostPort(host)
	dctx, cancel := context.WithTimeout(ctx, inv.opts.ConnectTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &gossh.ClientConfig{
		User:              user,
		Auth:              []gossh.AuthMethod{gossh.PublicKeys(inv.opts.Signers...)},
		HostKeyCallback:   inv.checkHostKey,
		HostKeyAlgorithms: inv.knownAlgorithms(addr, nc.RemoteAddr()),
		Timeout:           inv.opts.ConnectTimeout,
	}
	// Bound the handshake too, not just the TCP connect.
	deadline, _ := dctx.Deadline()
	_ = nc.SetDeadline(deadline)
	cc, chans, reqs, err := gossh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	client := gossh.NewClient(cc, chans, reqs)
	go keepAlive(client, inv.opts.KeepAlive, inv.opts.ConnectTimeout)
	return newConn(inv, host, user, client), nil
}

// keepAlive sends a keepalive request every interval and closes the client
// when one is not answered within timeout, so commands on a silently dead
// connection fail instead of hanging. It returns when the client closes.
func keepAlive(c *gossh.Client, interval, timeout time.Duration) {
	closed := make(chan struct{})
	go func() {
		_ = c.Wait()
		close(closed)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(timeout):
			c.Close() // also ends the pending SendRequest
			return
		case <-closed:
			return
		}
	}
}
