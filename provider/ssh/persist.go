package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Persist keeps the SSH connections of an inventory open after the
// controller process ends, in a holder process, so that the next
// controller — a new process running the next plan — reuses them instead
// of connecting to every machine again: what OpenSSH's ControlPersist
// gives Ansible. Set it in [Options.Persist].
//
// The holder listens on a unix socket in Dir, which must be private (mode
// 0700, owned by the user; created so if missing); it serves only
// processes of its own user (checked with SO_PEERCRED) and controllers
// check, in turn, that it runs as their user and holds the host key whose
// public half it wrote to Dir. It holds no secret: it authenticates to the
// machines with the keys of the controller that asks (forwarded like an
// SSH agent, the private keys never leave the controller), and reusing a
// held connection needs a fresh signature by the key that authenticated
// it. Host keys are checked by the holder against the controller's
// known_hosts file, exactly as the inventory checks them.
//
// When no holder answers, the inventory starts one if Start is set, and
// otherwise (or if that fails, or the holder dies mid-run) connects
// directly, logging a warning on Options.Logger: slower, never wrong.
type Persist struct {
	// Dir is the holder's directory (its socket, lock, public host key
	// and log). Use one per user and application, for example
	// $XDG_RUNTIME_DIR/myapp-ssh.
	Dir string
	// Idle is how long the holder stays with no controller connected
	// before it closes its connections and exits; default 60s.
	Idle time.Duration
	// Start starts a holder when none answers, by running this program's
	// executable again with an environment variable that makes
	// [HolderMain] serve instead of returning. The program must call
	// HolderMain first thing in main; Open refuses Start otherwise.
	Start bool
	// FactsMaxAge bounds how old the facts a holder kept for a connection
	// may be when a node is created on it. The facts are read on every new
	// connection (a reboot or re-install of a machine breaks its
	// connection) and kept with it; older than this they are read again.
	// Default 5 minutes; negative means always read them.
	FactsMaxAge time.Duration
}

// The files in a holder's directory.
const (
	holderSocket = "holder.sock"
	holderPub    = "holder.pub" // the holder's public host key, mode 0600
	holderLock   = "holder.lock"
	holderLog    = "holder.log" // stderr of a holder started by Persist.Start
)

func (p Persist) withDefaults() Persist {
	if p.Idle <= 0 {
		p.Idle = 60 * time.Second
	}
	if p.FactsMaxAge == 0 {
		p.FactsMaxAge = 5 * time.Minute
	}
	return p
}

// privateDir checks that dir is a directory of this user that nobody else
// may enter, creating it (0700) if missing.
func privateDir(dir string, create bool) error {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("holder directory: %w", err)
		}
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("holder directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("holder directory %s is not a directory", dir)
	}
	if err := ownedPrivate(st); err != nil {
		return fmt.Errorf("holder directory %s %w: refusing it (make it 0700 and yours)", dir, err)
	}
	return nil
}

// ownedPrivate checks a file is this user's and has no group or other
// permission bits.
func ownedPrivate(st os.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("has no owner information")
	}
	if int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("belongs to uid %d, not %d", sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("has mode %04o", st.Mode().Perm())
	}
	return nil
}

// peerUID returns the uid of the process at the other end of a unix
// socket connection.
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) { cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return -1, err
	}
	if serr != nil {
		return -1, serr
	}
	return int(cred.Uid), nil
}

func holderPath(dir, name string) string { return filepath.Join(dir, name) }
