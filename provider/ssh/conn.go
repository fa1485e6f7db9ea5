package ssh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// upstream is what a conn opens session channels on: an SSH client of
// its own, or a connection kept by a holder (see Persist).
type upstream interface {
	OpenChannel(name string, data []byte) (gossh.Channel, <-chan *gossh.Request, error)
	// Close ends this process's use of it (a held connection stays with
	// its holder).
	Close() error
}

// conn is the one SSH connection kept per claimed host, shared by every
// command on it: each command is a session (an SSH channel) multiplexed
// over it, at most Options.MaxSessions at a time. A broken connection is
// replaced on the next command.
type conn struct {
	inv   *Inventory
	host  Host
	user  string
	sem   chan struct{}
	batch *batcher

	mu     sync.Mutex
	client upstream
	closed bool
	// facts are the facts the holder kept for a held connection ("" when
	// they must be read).
	facts string
}

func newConn(inv *Inventory, host Host, user string, c upstream) *conn {
	cn := &conn{inv: inv, host: host, user: user, client: c, sem: make(chan struct{}, inv.opts.MaxSessions)}
	cn.batch = &batcher{conn: cn, window: inv.opts.BatchWindow}
	return cn
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
func openSession(c upstream, timeout time.Duration) (gossh.Channel, <-chan *gossh.Request, error) {
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
		// Closing makes a pending OpenChannel return; a held connection's
		// (Close leaves it with the holder) may still succeed: close what
		// comes, or it would keep one of the machine's sessions.
		c.Close()
		go func() {
			if r := <-got; r.err == nil {
				r.ch.Close()
			}
		}()
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

// upstreamNow returns what the conn's sessions open on now (nil between a
// break and the next reconnect).
func (c *conn) upstreamNow() upstream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}
