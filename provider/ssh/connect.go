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
// With Options.Persist it first asks the holder, which keeps connections
// across controller processes; when the holder cannot serve (none
// answers, or it failed to reach the host) it dials directly, and
// errors (typed host key errors included) come from that direct attempt.
func (inv *Inventory) connect(ctx context.Context, host Host, users []string) (*conn, string, error) {
	if inv.hold != nil {
		if c, err := inv.hold.connect(ctx, host, users); err == nil {
			return c, c.user, nil
		}
	}
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

// dial makes one direct connection attempt as user, bounded by
// ConnectTimeout.
func (inv *Inventory) dial(ctx context.Context, host Host, user string) (*conn, error) {
	c, err := dialSSH(ctx, hostPort(host), user, []gossh.AuthMethod{gossh.PublicKeys(inv.opts.Signers...)}, inv.kh, inv.opts.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	go keepAlive(c, inv.opts.KeepAlive, inv.opts.ConnectTimeout)
	return newConn(inv, host, user, c), nil
}

// dialSSH makes one SSH connection to addr as user, checking the host key
// against kh, bounded by timeout (TCP connect and handshake).
func dialSSH(ctx context.Context, addr, user string, auth []gossh.AuthMethod, kh *knownHosts, timeout time.Duration) (*gossh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &gossh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   kh.check,
		HostKeyAlgorithms: kh.algorithms(addr, nc.RemoteAddr()),
		Timeout:           timeout,
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
	return gossh.NewClient(cc, chans, reqs), nil
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
