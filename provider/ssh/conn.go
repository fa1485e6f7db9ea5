package ssh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// conn is the one SSH connection kept per claimed host, shared by every
// command on it: each command is a session (an SSH channel) multiplexed
// over it, at most Options.MaxSessions at a time. A broken connection is
// replaced on the next command.
type conn struct {
	inv  *Inventory
	host Host
	user string
	sem  chan struct{}

	mu     sync.Mutex
	client *gossh.Client
	closed bool
}

func newConn(inv *Inventory, host Host, user string, c *gossh.Client) *conn {
	return &conn{inv: inv, host: host, user: user, client: c, sem: make(chan struct{}, inv.opts.MaxSessions)}
}

// channel opens a session channel, reconnecting once if the connection
// broke.
func (c *conn) channel(ctx context.Context) (gossh.Channel, <-chan *gossh.Request, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, errors.New("connection closed: the node was deleted")
	}
	if c.client != nil {
		ch, reqs, err := openSession(c.client, c.inv.opts.ConnectTimeout)
		if err == nil {
			return ch, reqs, nil
		}
		c.client.Close()
		c.client = nil
	}
	nc, user, err := c.inv.connect(ctx, c.host, []string{c.user})
	if err != nil {
		return nil, nil, err
	}
	c.client, c.user = nc.client, user
	return openSession(c.client, c.inv.opts.ConnectTimeout)
}

// openSession opens a session channel, giving up (and closing the
// connection) when the server does not answer within timeout.
func openSession(c *gossh.Client, timeout time.Duration) (gossh.Channel, <-chan *gossh.Request, error) {
	type result struct {
		ch   gossh.Channel
		reqs <-chan *gossh.Request
		err  error
	}
	got := make(chan result, 1)
	go func() {
		ch, reqs, err := c.OpenChannel("session", nil)
		got <- result{ch, reqs, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-got:
		return r.ch, r.reqs, r.err
	case <-t.C:
		c.Close() // makes the pending OpenChannel return
		return nil, nil, fmt.Errorf("opening a session took longer than %s", timeout)
	}
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
}
