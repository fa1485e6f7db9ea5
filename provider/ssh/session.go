package ssh

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// WaitDelay is how long a command's output may stay open after the
// command exited: a command that leaves a background process holding its
// stdout or stderr ("daemon &") returns this long after it exits, with the
// output read so far, instead of waiting for that process. Redirect a
// background process's output (">/dev/null 2>&1 &") and there is no wait.
const WaitDelay = 2 * time.Second

// session is one command on its own SSH channel. It is built on the raw
// channel rather than x/crypto/ssh's Session because that one reports the
// exit status only when the channel closes, which a background process
// holding the output postpones indefinitely.
type session struct {
	ch     gossh.Channel
	exited chan struct{} // closed when exit-status or exit-signal arrives
	closed chan struct{} // closed when the server closed the channel
	output chan struct{} // closed when stdout and stderr reached EOF

	mu      sync.Mutex
	status  int
	signal  string
	gotExit bool
}

// exitInfo is how a command ended.
type exitInfo struct {
	status int
	signal string // "" unless a signal ended it ("KILL")
}

// startSession runs line on a new channel of c, copying stdin (if any) to
// it and its output to stdout and stderr.
func (c *conn) startSession(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) (*session, error) {
	ch, reqs, err := c.channel(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{ch: ch, exited: make(chan struct{}), closed: make(chan struct{}), output: make(chan struct{})}
	go s.requests(reqs)
	ok, err := ch.SendRequest("exec", true, gossh.Marshal(&struct{ Command string }{line}))
	if err == nil && !ok {
		err = errors.New("the server refused to run the command")
	}
	if err != nil {
		ch.Close()
		return nil, err
	}
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); _, _ = io.Copy(stdout, ch) }()
	go func() { defer copies.Done(); _, _ = io.Copy(stderr, ch.Stderr()) }()
	go func() { copies.Wait(); close(s.output) }()
	go func() {
		if stdin != nil {
			_, _ = io.Copy(ch, stdin)
		}
		_ = ch.CloseWrite()
	}()
	return s, nil
}

// requests records the exit status from the channel's requests until the
// server closes the channel.
func (s *session) requests(reqs <-chan *gossh.Request) {
	defer close(s.closed)
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			if len(r.Payload) >= 4 {
				s.setExit(int(binary.BigEndian.Uint32(r.Payload)), "")
			}
		case "exit-signal":
			var sig struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if gossh.Unmarshal(r.Payload, &sig) == nil {
				s.setExit(-1, sig.Signal)
			}
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

func (s *session) setExit(status int, signal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gotExit {
		return
	}
	s.status, s.signal, s.gotExit = status, signal, true
	close(s.exited)
}

// wait returns how the command ended, once it exited and its output is
// read (or WaitDelay after it exited, if something else still holds the
// output), or ctx's error.
func (s *session) wait(ctx context.Context) (exitInfo, error) {
	select {
	case <-s.exited:
	case <-s.closed:
	case <-ctx.Done():
		return exitInfo{}, ctx.Err()
	}
	t := time.NewTimer(WaitDelay)
	defer t.Stop()
	select {
	case <-s.output:
	case <-t.C:
		// A background process holds the output: stop reading it.
	case <-ctx.Done():
		return exitInfo{}, ctx.Err()
	}
	s.ch.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gotExit {
		return exitInfo{}, errors.New("the command ended without an exit status (the connection or the server's session broke)")
	}
	return exitInfo{status: s.status, signal: s.signal}, nil
}

// signal asks the server to send sig to the command; OpenSSH refuses it
// for some sessions, so callers also kill by PID.
func (s *session) sendSignal(sig gossh.Signal) {
	_, _ = s.ch.SendRequest("signal", false, gossh.Marshal(&struct{ Signal string }{string(sig)}))
}

func (s *session) close() { s.ch.Close() }
