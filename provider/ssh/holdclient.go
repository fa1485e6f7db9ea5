package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// holdClient is an inventory's connection to its holder (see Persist).
type holdClient struct {
	inv *Inventory
	p   Persist

	mu      sync.Mutex
	client  *gossh.Client
	dead    chan struct{}
	started bool   // Start was tried: at most once per inventory
	warned  string // the last warning logged, not to repeat it per host
}

// connect asks the holder for a connection to host as the first of users
// that accepts the inventory's keys.
func (hc *holdClient) connect(ctx context.Context, host Host, users []string) (*conn, error) {
	cl, err := hc.get(ctx)
	if err != nil {
		return nil, err
	}
	inv := hc.inv
	// The holder may run in another directory (one started by Start runs
	// in /): it gets the known_hosts file's absolute path.
	khPath, err := filepath.Abs(inv.kh.path)
	if err != nil {
		return nil, err
	}
	req := connectRequest{
		Addr: hostPort(host), Users: users, KnownHosts: khPath, TOFU: inv.kh.tofu,
		ConnectTimeout: inv.opts.ConnectTimeout, KeepAlive: inv.opts.KeepAlive, MaxSessions: inv.opts.MaxSessions,
		FactsMaxAge: hc.p.FactsMaxAge, Keys: keyStrings(inv.opts.Signers),
	}
	b, _ := json.Marshal(req)
	ch, reqs, err := cl.OpenChannel(chanConnect, b)
	if err != nil {
		var oce *gossh.OpenChannelError
		if !errors.As(err, &oce) {
			hc.drop(cl, err)
		}
		return nil, err
	}
	go gossh.DiscardRequests(reqs)
	stop := context.AfterFunc(ctx, func() { ch.Close() })
	payload, err := io.ReadAll(ch)
	stop()
	ch.Close()
	var reply connectReply
	if err == nil {
		err = json.Unmarshal(payload, &reply)
	}
	if err != nil {
		hc.drop(cl, err)
		return nil, err
	}
	if reply.Error != "" {
		// The host itself is the trouble (down, key refused, host key
		// unknown): the direct attempt reports it, typed.
		inv.logger().Debug("ssh: the holder could not connect; connecting directly", "host", host.Name, "err", reply.Error)
		return nil, fmt.Errorf("holder: %s", reply.Error)
	}
	c := newConn(inv, host, reply.User, &heldConn{hc: hc, client: cl, id: reply.ID})
	c.facts = reply.Facts
	return c, nil
}

// putFacts gives the holder the facts read on a held connection.
func (hc *holdClient) putFacts(c *conn, facts string) {
	hcn, ok := c.upstreamNow().(*heldConn)
	if !ok {
		return
	}
	b, _ := json.Marshal(factsRequest{ID: hcn.id, Facts: facts})
	_, _, _ = hcn.client.SendRequest(reqFacts, false, b)
}

// get returns the connection to the holder, connecting (and, with
// Persist.Start, starting a holder) when there is none.
func (hc *holdClient) get(ctx context.Context) (*gossh.Client, error) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.client != nil {
		select {
		case <-hc.dead:
			hc.client = nil
		default:
			return hc.client, nil
		}
	}
	cl, err := hc.dial()
	if err != nil && hc.p.Start && !hc.started {
		hc.started = true
		if serr := hc.start(); serr != nil {
			err = serr
		} else {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
				if cl, err = hc.dial(); err == nil {
					break
				}
			}
		}
	}
	if err != nil {
		if msg := err.Error(); msg != hc.warned {
			hc.warned = msg
			hc.inv.logger().Warn("ssh: no connection holder; connecting to every host directly", "dir", hc.p.Dir, "err", err)
		}
		return nil, err
	}
	hc.warned = ""
	dead := make(chan struct{})
	go func() { _ = cl.Wait(); close(dead) }()
	hc.client, hc.dead = cl, dead
	return cl, nil
}

// drop forgets a holder connection that failed.
func (hc *holdClient) drop(cl *gossh.Client, err error) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.client == cl {
		hc.client = nil
		cl.Close()
		hc.inv.logger().Warn("ssh: the connection holder stopped answering; connecting directly", "dir", hc.p.Dir, "err", err)
	}
}

// dial connects to the holder in Dir after checking that the directory is
// private, that the holder runs as this user, and that it has the host
// key it published there.
func (hc *holdClient) dial() (*gossh.Client, error) {
	dir := hc.p.Dir
	if err := privateDir(dir, false); err != nil {
		return nil, err
	}
	pubPath := holderPath(dir, holderPub)
	st, err := os.Lstat(pubPath)
	if err != nil {
		return nil, fmt.Errorf("holder key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("holder key %s is not a regular file", pubPath)
	}
	if err := ownedPrivate(st); err != nil {
		return nil, fmt.Errorf("holder key %s %w: refusing it", pubPath, err)
	}
	b, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, fmt.Errorf("holder key: %w", err)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("holder key %s: %w", pubPath, err)
	}
	nc, err := net.DialTimeout("unix", holderPath(dir, holderSocket), time.Second)
	if err != nil {
		return nil, err
	}
	if uid, err := peerUID(nc); err != nil || uid != os.Geteuid() {
		nc.Close()
		return nil, fmt.Errorf("the holder socket in %s is served by uid %d, not %d (%v): refusing it", dir, uid, os.Geteuid(), err)
	}
	_ = nc.SetDeadline(time.Now().Add(hc.inv.opts.ConnectTimeout))
	cc, chans, reqs, err := gossh.NewClientConn(nc, "holder", &gossh.ClientConfig{
		User:            "mason",
		HostKeyCallback: gossh.FixedHostKey(pub),
		Timeout:         hc.inv.opts.ConnectTimeout,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("holder in %s: %w", dir, err)
	}
	_ = nc.SetDeadline(time.Time{})
	go gossh.DiscardRequests(reqs)
	go serveAgent(chans, signerAgent(hc.inv.opts.Signers))
	return gossh.NewClient(cc, nil, nil), nil
}

// start runs this program's executable as a holder (HolderMain serves in
// it), in its own session, its stderr appended to the holder's log.
func (hc *holdClient) start() error {
	if err := privateDir(hc.p.Dir, true); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start a holder: %w", err)
	}
	logf, err := os.OpenFile(holderPath(hc.p.Dir, holderLog), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("start a holder: %w", err)
	}
	defer logf.Close()
	dir, err := filepath.Abs(hc.p.Dir)
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), holderEnv+"="+dir, holderIdlEnv+"="+hc.p.Idle.String())
	cmd.Stderr = logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start a holder: %w", err)
	}
	hc.inv.logger().Info("ssh: started a connection holder", "dir", dir, "pid", cmd.Process.Pid, "idle", hc.p.Idle)
	go func() { _ = cmd.Wait() }() // reaps it should it end while we run
	return nil
}

func (hc *holdClient) close() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.client != nil {
		hc.client.Close()
		hc.client = nil
	}
}

// heldConn is a machine's connection kept by the holder.
type heldConn struct {
	hc     *holdClient
	client *gossh.Client // to the holder
	id     string
}

func (h *heldConn) OpenChannel(name string, data []byte) (gossh.Channel, <-chan *gossh.Request, error) {
	if name != "session" {
		return nil, nil, fmt.Errorf("ssh: held connections open sessions only, not %q", name)
	}
	ch, reqs, err := h.client.OpenChannel(chanSession, []byte(h.id))
	var oce *gossh.OpenChannelError
	if err != nil && !errors.As(err, &oce) {
		h.hc.drop(h.client, err) // the holder itself is gone
	}
	return ch, reqs, err
}

// Close leaves the connection with the holder.
func (h *heldConn) Close() error { return nil }

// serveAgent answers the holder's agent channels with the inventory's
// signers, until the connection to the holder closes.
func serveAgent(chans <-chan gossh.NewChannel, ag agent.Agent) {
	for nch := range chans {
		if nch.ChannelType() != chanAgent {
			_ = nch.Reject(gossh.UnknownChannelType, "only agent channels")
			continue
		}
		ch, reqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go gossh.DiscardRequests(reqs)
		go func() { _ = agent.ServeAgent(ag, ch); ch.Close() }()
	}
}

// signerAgent is an agent that signs with the inventory's signers and
// nothing else: the holder never receives a private key.
type signerAgent []gossh.Signer

var errAgentReadOnly = errors.New("ssh: the inventory's agent only signs")

func (a signerAgent) List() ([]*agent.Key, error) {
	var out []*agent.Key
	for _, s := range a {
		pub := s.PublicKey()
		out = append(out, &agent.Key{Format: pub.Type(), Blob: pub.Marshal()})
	}
	return out, nil
}

func (a signerAgent) Sign(key gossh.PublicKey, data []byte) (*gossh.Signature, error) {
	return a.SignWithFlags(key, data, 0)
}

func (a signerAgent) SignWithFlags(key gossh.PublicKey, data []byte, flags agent.SignatureFlags) (*gossh.Signature, error) {
	for _, s := range a {
		if !bytes.Equal(s.PublicKey().Marshal(), key.Marshal()) {
			continue
		}
		if as, ok := s.(gossh.AlgorithmSigner); ok && key.Type() == gossh.KeyAlgoRSA {
			algo := gossh.KeyAlgoRSA
			switch {
			case flags&agent.SignatureFlagRsaSha512 != 0:
				algo = gossh.KeyAlgoRSASHA512
			case flags&agent.SignatureFlagRsaSha256 != 0:
				algo = gossh.KeyAlgoRSASHA256
			}
			return as.SignWithAlgorithm(rand.Reader, data, algo)
		}
		return s.Sign(rand.Reader, data)
	}
	return nil, errors.New("ssh: no such key")
}

func (a signerAgent) Add(agent.AddedKey) error         { return errAgentReadOnly }
func (a signerAgent) Remove(gossh.PublicKey) error     { return errAgentReadOnly }
func (a signerAgent) RemoveAll() error                 { return errAgentReadOnly }
func (a signerAgent) Lock([]byte) error                { return errAgentReadOnly }
func (a signerAgent) Unlock([]byte) error              { return errAgentReadOnly }
func (a signerAgent) Signers() ([]gossh.Signer, error) { return a, nil }
func (a signerAgent) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}
