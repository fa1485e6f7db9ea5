package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"
)

// ErrHolderRunning is returned by [ServeHolder] when another holder
// already serves the directory.
var ErrHolderRunning = errors.New("ssh: a holder already serves this directory")

// The holder's protocol: SSH over the unix socket, with these channel
// types and global request (payloads are JSON). Connecting is a channel,
// not a global request: x/crypto allows one global request awaiting its
// reply at a time, which would connect to the machines one by one.
const (
	chanConnect  = "connect@masonops" // extra data connectRequest; the holder writes a connectReply and closes
	reqFacts     = "facts@masonops"   // factsRequest, no reply
	chanSession  = "session@masonops" // extra data: the held connection's ID
	chanAgent    = "auth-agent@openssh.com"
	holderEnv    = "MASON_SSH_HOLDER"      // the directory, for HolderMain
	holderIdlEnv = "MASON_SSH_HOLDER_IDLE" // Persist.Idle, for HolderMain
)

type connectRequest struct {
	Addr           string
	Users          []string
	KnownHosts     string
	TOFU           bool
	ConnectTimeout time.Duration
	KeepAlive      time.Duration
	MaxSessions    int
	FactsMaxAge    time.Duration
	// Keys are the controller's public keys (authorized_keys form): a
	// connection is shared only by controllers offering the same keys.
	Keys []string
}

type connectReply struct {
	ID    string
	User  string
	Facts string // "" when the controller must read them
	Error string // why the holder could not connect
}

type factsRequest struct {
	ID    string
	Facts string
}

// hookCalled records that the program called HolderMain, so that
// Persist.Start may run the executable again: without the hook the new
// process would run the program's main instead of a holder. It is the
// package's one piece of state, set once.
var hookCalled atomic.Bool

// HolderMain lets a program start its own connection holder (see
// [Persist.Start]). Call it first thing in main: in a process started as
// a holder it serves the connections and exits; in any other process it
// returns at once.
//
//	func main() {
//		ssh.HolderMain()
//		...
//	}
func HolderMain() {
	hookCalled.Store(true)
	dir := os.Getenv(holderEnv)
	if dir == "" {
		return
	}
	idle, _ := time.ParseDuration(os.Getenv(holderIdlEnv))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := ServeHolder(ctx, Persist{Dir: dir, Idle: idle})
	if err != nil && !errors.Is(err, ErrHolderRunning) {
		fmt.Fprintln(os.Stderr, err)
		stop()
		os.Exit(1)
	}
	stop()
	os.Exit(0)
}

// ServeHolder runs a connection holder on p.Dir until ctx ends or no
// controller has been connected for p.Idle (see [Persist]). It returns
// ErrHolderRunning at once when another holder serves the directory. It
// logs refusals and failures with slog's default logger.
func ServeHolder(ctx context.Context, p Persist) error {
	p = p.withDefaults()
	if p.Dir == "" {
		return errors.New("ssh: ServeHolder: Persist.Dir is empty")
	}
	if err := privateDir(p.Dir, true); err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	lock, err := os.OpenFile(holderPath(p.Dir, holderLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("ssh: holder lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrHolderRunning
		}
		return fmt.Errorf("ssh: holder lock: %w", err)
	}
	// The lock file names the holder's PID, for operators.
	_ = lock.Truncate(0)
	_, _ = lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	// Under the lock the socket and key files are ours to replace.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	sock := holderPath(p.Dir, holderSocket)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("ssh: holder: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("ssh: holder: %w", err)
	}
	pub := holderPath(p.Dir, holderPub)
	tmp := pub + ".new"
	if err := os.WriteFile(tmp, gossh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("ssh: holder: %w", err)
	}
	if err := os.Rename(tmp, pub); err != nil {
		ln.Close()
		return fmt.Errorf("ssh: holder: %w", err)
	}
	h := &holder{p: p, log: slog.Default().With("holder", p.Dir), held: map[string]*held{}, byID: map[string]*held{}, khs: map[string]*knownHosts{}, clients: map[*gossh.ServerConn]bool{}}
	h.cfg = &gossh.ServerConfig{NoClientAuth: true} // the peer's uid is the authentication
	h.cfg.AddHostKey(signer)
	return h.serve(ctx, ln)
}

// holder keeps SSH connections to machines for the controllers of one
// user.
type holder struct {
	p   Persist
	log *slog.Logger
	cfg *gossh.ServerConfig

	mu      sync.Mutex
	held    map[string]*held // by connectRequest key
	byID    map[string]*held
	khs     map[string]*knownHosts // by file and TOFU setting
	clients map[*gossh.ServerConn]bool
	nextID  int
	lastUse time.Time
}

// held is one kept connection to a machine.
type held struct {
	key string
	id  string

	mu      sync.Mutex // serializes connecting and reuse checks
	client  *gossh.Client
	dead    chan struct{} // closed when client ended
	user    string
	authKey gossh.PublicKey // the key that authenticated the connection
	sem     chan struct{}   // bounds its sessions across controllers

	fmu     sync.Mutex
	facts   string
	factsAt time.Time
}

func (h *holder) serve(ctx context.Context, ln net.Listener) error {
	defer func() {
		_ = os.Remove(holderPath(h.p.Dir, holderSocket))
		_ = os.Remove(holderPath(h.p.Dir, holderPub))
	}()
	var wg sync.WaitGroup
	accepted := make(chan net.Conn)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	h.mu.Lock()
	h.lastUse = time.Now()
	h.mu.Unlock()
	tick := time.NewTicker(min(h.p.Idle/4+time.Millisecond, time.Second))
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case c, ok := <-accepted:
			if !ok {
				err = errors.New("ssh: holder: the socket stopped accepting")
				break loop
			}
			uid, uerr := peerUID(c)
			if uerr != nil || uid != os.Geteuid() {
				h.log.Warn("refused a connection from another user", "uid", uid, "err", uerr)
				c.Close()
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); h.serveController(c) }()
		case <-tick.C:
			h.mu.Lock()
			idle := len(h.clients) == 0 && time.Since(h.lastUse) >= h.p.Idle
			h.mu.Unlock()
			if idle {
				break loop
			}
		}
	}
	ln.Close()
	for range accepted {
	}
	h.mu.Lock()
	for sc := range h.clients {
		sc.Close()
	}
	for _, hd := range h.held {
		hd.mu.Lock()
		if hd.client != nil {
			hd.client.Close()
		}
		hd.mu.Unlock()
	}
	h.mu.Unlock()
	wg.Wait()
	return err
}

// serveController serves one controller's connection until it closes.
func (h *holder) serveController(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := gossh.NewServerConn(nc, h.cfg)
	if err != nil {
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	h.mu.Lock()
	h.clients[sc] = true
	h.mu.Unlock()
	defer func() {
		sc.Close()
		h.mu.Lock()
		delete(h.clients, sc)
		h.lastUse = time.Now()
		h.mu.Unlock()
	}()
	ctl := &controller{sc: sc, granted: map[string]bool{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range reqs {
			switch r.Type {
			case reqFacts:
				h.putFacts(ctl, r)
			default:
				if r.WantReply {
					_ = r.Reply(false, nil)
				}
			}
		}
	}()
	for ch := range chans {
		switch ch.ChannelType() {
		case chanSession:
			wg.Add(1)
			go func() { defer wg.Done(); h.session(ctl, ch) }()
		case chanConnect:
			wg.Add(1)
			go func() { defer wg.Done(); h.connect(ctl, ch) }()
		default:
			_ = ch.Reject(gossh.UnknownChannelType, "the holder opens sessions and connections only")
		}
	}
	sc.Close()
	wg.Wait()
}

// controller is one connected controller: the agent channel back to it
// signs for the holder; granted are the held connections it proved it may
// use (only those it may open sessions on).
type controller struct {
	sc      *gossh.ServerConn
	mu      sync.Mutex
	ag      agent.ExtendedAgent
	granted map[string]bool
}

func (c *controller) grant(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.granted[id] = true
}

func (c *controller) may(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.granted[id]
}

func (c *controller) agent() (agent.ExtendedAgent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ag == nil {
		ch, reqs, err := c.sc.OpenChannel(chanAgent, nil)
		if err != nil {
			return nil, fmt.Errorf("the controller's keys are not reachable: %w", err)
		}
		go gossh.DiscardRequests(reqs)
		c.ag = agent.NewClient(ch)
	}
	return c.ag, nil
}

func (r connectRequest) key() string {
	return strings.Join([]string{r.Addr, strings.Join(r.Users, ","), r.KnownHosts, strconv.FormatBool(r.TOFU), strings.Join(r.Keys, ",")}, "\x00")
}

func (h *holder) connect(ctl *controller, nch gossh.NewChannel) {
	var req connectRequest
	if err := json.Unmarshal(nch.ExtraData(), &req); err != nil || req.Addr == "" || len(req.Users) == 0 {
		_ = nch.Reject(gossh.Prohibited, "bad connect request")
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	defer ch.Close()
	reply, err := h.hold(ctl, req)
	if err != nil {
		reply = connectReply{Error: err.Error()}
	} else {
		ctl.grant(reply.ID)
	}
	b, _ := json.Marshal(reply)
	_, _ = ch.Write(b)
	_ = ch.CloseWrite()
}

// hold returns the kept connection for req, connecting when there is none
// (or it broke), after the controller proved it holds the key that
// authenticated it.
func (h *holder) hold(ctl *controller, req connectRequest) (connectReply, error) {
	h.mu.Lock()
	hd := h.held[req.key()]
	if hd == nil {
		h.nextID++
		hd = &held{key: req.key(), id: strconv.Itoa(h.nextID), sem: make(chan struct{}, max(1, req.MaxSessions))}
		h.held[hd.key], h.byID[hd.id] = hd, hd
	}
	kh := h.khs[req.KnownHosts+"\x00"+strconv.FormatBool(req.TOFU)]
	if kh == nil {
		kh = &knownHosts{path: req.KnownHosts, tofu: req.TOFU}
		h.khs[req.KnownHosts+"\x00"+strconv.FormatBool(req.TOFU)] = kh
	}
	h.mu.Unlock()
	ag, err := ctl.agent()
	if err != nil {
		return connectReply{}, err
	}

	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.client != nil {
		select {
		case <-hd.dead:
			hd.client = nil
		default:
		}
	}
	if hd.client != nil {
		if err := proveKey(ag, hd.authKey); err != nil {
			return connectReply{}, err
		}
		reply := connectReply{ID: hd.id, User: hd.user}
		hd.fmu.Lock()
		if req.FactsMaxAge >= 0 && time.Since(hd.factsAt) <= req.FactsMaxAge {
			reply.Facts = hd.facts
		}
		hd.fmu.Unlock()
		return reply, nil
	}

	signers, err := ag.Signers()
	if err != nil {
		return connectReply{}, fmt.Errorf("the controller's keys: %w", err)
	}
	used := &usedKey{}
	var auth []gossh.Signer
	for _, s := range signers {
		if as, ok := s.(gossh.AlgorithmSigner); ok {
			auth = append(auth, recordingSigner{as, used})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), req.ConnectTimeout*time.Duration(len(req.Users))+time.Second)
	defer cancel()
	var authErrs []string
	for _, u := range req.Users {
		c, err := dialSSH(ctx, req.Addr, u, []gossh.AuthMethod{gossh.PublicKeys(auth...)}, kh, req.ConnectTimeout)
		if err != nil {
			if isAuthError(err) {
				authErrs = append(authErrs, u)
				continue
			}
			return connectReply{}, err
		}
		go keepAlive(c, req.KeepAlive, req.ConnectTimeout)
		dead := make(chan struct{})
		go func() { _ = c.Wait(); close(dead) }()
		hd.client, hd.dead, hd.user, hd.authKey = c, dead, u, used.get()
		hd.fmu.Lock()
		hd.facts, hd.factsAt = "", time.Time{}
		hd.fmu.Unlock()
		return connectReply{ID: hd.id, User: u}, nil
	}
	return connectReply{}, fmt.Errorf("none of the users %s accepted the keys", strings.Join(authErrs, ", "))
}

// proveKey asks the controller to sign a fresh challenge with key.
func proveKey(ag agent.ExtendedAgent, key gossh.PublicKey) error {
	if key == nil {
		return errors.New("the held connection's key is unknown")
	}
	challenge := make([]byte, 32)
	_, _ = rand.Read(challenge)
	var flags agent.SignatureFlags
	if key.Type() == gossh.KeyAlgoRSA {
		flags = agent.SignatureFlagRsaSha256
	}
	sig, err := ag.SignWithFlags(key, challenge, flags)
	if err == nil {
		err = key.Verify(challenge, sig)
	}
	if err != nil {
		return fmt.Errorf("the controller does not hold the key the connection was made with: %w", err)
	}
	return nil
}

// usedKey records which key the server accepted: x/crypto asks a signer
// to sign only after the server accepted its public key.
type usedKey struct {
	mu  sync.Mutex
	key gossh.PublicKey
}

func (u *usedKey) get() gossh.PublicKey {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.key
}

type recordingSigner struct {
	gossh.AlgorithmSigner
	used *usedKey
}

func (s recordingSigner) record() {
	s.used.mu.Lock()
	s.used.key = s.PublicKey()
	s.used.mu.Unlock()
}

func (s recordingSigner) Sign(r io.Reader, data []byte) (*gossh.Signature, error) {
	s.record()
	return s.AlgorithmSigner.Sign(r, data)
}

func (s recordingSigner) SignWithAlgorithm(r io.Reader, data []byte, algorithm string) (*gossh.Signature, error) {
	s.record()
	return s.AlgorithmSigner.SignWithAlgorithm(r, data, algorithm)
}

func (h *holder) putFacts(ctl *controller, r *gossh.Request) {
	var req factsRequest
	if json.Unmarshal(r.Payload, &req) != nil || !ctl.may(req.ID) {
		return
	}
	h.mu.Lock()
	hd := h.byID[req.ID]
	h.mu.Unlock()
	if hd == nil {
		return
	}
	hd.fmu.Lock()
	hd.facts, hd.factsAt = req.Facts, time.Now()
	hd.fmu.Unlock()
}

// session forwards one session channel to the held connection it names:
// data both ways, stderr, end of input, and requests both ways (exec,
// signal, exit-status, ...).
func (h *holder) session(ctl *controller, nch gossh.NewChannel) {
	id := string(nch.ExtraData())
	if !ctl.may(id) {
		_ = nch.Reject(gossh.Prohibited, "connect first: no such held connection for this controller")
		return
	}
	h.mu.Lock()
	hd := h.byID[id]
	h.mu.Unlock()
	if hd == nil {
		_ = nch.Reject(gossh.ConnectionFailed, "no such held connection")
		return
	}
	hd.mu.Lock()
	c, dead := hd.client, hd.dead
	hd.mu.Unlock()
	if c == nil {
		_ = nch.Reject(gossh.ConnectionFailed, "the held connection is closed")
		return
	}
	select {
	case hd.sem <- struct{}{}:
	case <-dead:
		_ = nch.Reject(gossh.ConnectionFailed, "the held connection broke")
		return
	}
	defer func() { <-hd.sem }()
	up, upReqs, err := c.OpenChannel("session", nil)
	if err != nil {
		_ = nch.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	down, downReqs, err := nch.Accept()
	if err != nil {
		up.Close()
		return
	}
	pipeChannel(down, downReqs, up, upReqs)
}

// pipeChannel joins two channels until the upstream one closes (the
// command ended) or the downstream one does (the controller gave up on
// it).
func pipeChannel(down gossh.Channel, downReqs <-chan *gossh.Request, up gossh.Channel, upReqs <-chan *gossh.Request) {
	var output sync.WaitGroup
	output.Add(2)
	go func() { defer output.Done(); _, _ = io.Copy(down, up) }()
	go func() { defer output.Done(); _, _ = io.Copy(down.Stderr(), up.Stderr()) }()
	go func() { output.Wait(); _ = down.CloseWrite() }()
	go func() { _, _ = io.Copy(up, down); _ = up.CloseWrite() }()
	go func() {
		forwardRequests(downReqs, up)
		up.Close()
	}()
	forwardRequests(upReqs, down)
	output.Wait()
	down.Close()
}

func forwardRequests(reqs <-chan *gossh.Request, to gossh.Channel) {
	for r := range reqs {
		ok, err := to.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			_ = r.Reply(ok && err == nil, nil)
		}
	}
}

// keyStrings are public keys in authorized_keys form, to key held
// connections by.
func keyStrings(signers []gossh.Signer) []string {
	var out []string
	for _, s := range signers {
		out = append(out, string(bytes.TrimSpace(gossh.MarshalAuthorizedKey(s.PublicKey()))))
	}
	return out
}
