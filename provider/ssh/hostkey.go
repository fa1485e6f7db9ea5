package ssh

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// probeKey is a public key no known_hosts file lists; checking it reveals
// which key types the file holds for a host.
var probeKey, _ = gossh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())

// algorithms returns the host key algorithms known_hosts has keys for
// at addr, so the server presents a key we can check: a host known by its
// RSA key would otherwise offer its ed25519 key and look changed. It
// returns nil (the library's defaults) for unknown hosts.
func (kh *knownHosts) algorithms(addr string, remote net.Addr) []string {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	cb, err := kh.callback()
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(cb(addr, remote, probeKey), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		names := []string{w.Key.Type()}
		if w.Key.Type() == gossh.KeyAlgoRSA {
			names = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	sort.Strings(algos) // deterministic; every listed type is acceptable
	return algos
}

// HostKeyError reports a host key that is not in the known_hosts file
// (Changed false) or differs from the one there (Changed true).
type HostKeyError struct {
	// Host is the address as dialled ("10.0.0.5:22").
	Host string
	// Fingerprint is the SHA256 fingerprint of the key the host offered.
	Fingerprint string
	// Changed is true when known_hosts has other keys for the host.
	Changed bool
}

// Error implements the error interface.
func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key of %s changed (now %s): refusing to connect; if the machine was really re-installed, remove its old line from known_hosts", e.Host, e.Fingerprint)
	}
	return fmt.Sprintf("host key of %s (%s) is not in known_hosts: refusing to connect; verify the fingerprint and add it (ssh-keyscan), or enable TrustOnFirstUse", e.Host, e.Fingerprint)
}

// knownHosts checks host keys against one known_hosts file. The
// inventory has one; a holder has one per file its controllers name.
type knownHosts struct {
	path string
	tofu bool

	mu sync.Mutex // serializes reads of the file and TOFU appends
	kh gossh.HostKeyCallback
	st os.FileInfo // of the file kh was parsed from
}

// check verifies key against the file, re-reading it whenever it
// changed, so keys added by TOFU or by the user are seen.
func (kh *knownHosts) check(hostname string, remote net.Addr, key gossh.PublicKey) error {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	cb, err := kh.callback()
	if err != nil {
		return fmt.Errorf("read known_hosts %s: %w", kh.path, err)
	}
	err = cb(hostname, remote, key)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return err
	}
	hk := &HostKeyError{Host: hostname, Fingerprint: gossh.FingerprintSHA256(key), Changed: len(ke.Want) > 0}
	if hk.Changed || !kh.tofu {
		return hk
	}
	f, err := os.OpenFile(kh.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("trust on first use: %w", err)
	}
	defer f.Close()
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("trust on first use: %w", err)
	}
	return nil
}

// callback returns the checker for the file, parsed again only when the
// file changed (size, modification time or inode): parsing it for every
// dial, under mu, serialized connecting to many machines. The caller
// holds mu.
func (kh *knownHosts) callback() (gossh.HostKeyCallback, error) {
	st, err := os.Stat(kh.path)
	if err != nil {
		return nil, err
	}
	if kh.kh != nil && os.SameFile(st, kh.st) && st.Size() == kh.st.Size() && st.ModTime().Equal(kh.st.ModTime()) {
		return kh.kh, nil
	}
	cb, err := knownhosts.New(kh.path)
	if err != nil {
		return nil, err
	}
	kh.kh, kh.st = cb, st
	return cb, nil
}
