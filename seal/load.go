package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxKeyFile bounds what LoadFile reads: a key file is a few dozen bytes.
const maxKeyFile = 1 << 10

// Parse reads a key written as text: hex (32, 48 or 64 digits) or
// standard base64 (of 16, 24 or 32 bytes). Surrounding white space is
// ignored. Use it for a key passed in a flag or variable.
func Parse(text string) (*KEK, error) {
	key, err := parseText([]byte(text))
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return New(key)
}

func parseText(b []byte) ([]byte, error) {
	t := string(bytes.TrimSpace(b))
	if key, err := hex.DecodeString(t); err == nil {
		return key, nil
	}
	if key, err := base64.StdEncoding.DecodeString(t); err == nil {
		return key, nil
	}
	return nil, fmt.Errorf("%w: the key is neither hex nor base64 text (%d characters)", ErrBadKey, len(t))
}

// decode reads a key file's contents: raw key bytes (16, 24 or 32 of
// them, as crypto/rand made them) or text (see Parse).
func decode(b []byte) ([]byte, error) {
	if key, err := parseText(b); err == nil {
		switch len(key) {
		case 16, 24, 32:
			return key, nil
		}
	}
	switch len(b) {
	case 16, 24, 32:
		return append([]byte(nil), b...), nil
	}
	return parseText(b)
}

// LoadFile reads the KEK kept in the file at path: raw key bytes or text
// (hex or base64; see Parse). The file must not be readable or writable by
// anyone but its owner (mode 0600 or 0400): a key other users can read
// protects nothing, so such a file is refused with ErrBadKey. A missing
// file is an error matching both ErrNoKey and fs.ErrNotExist; every error
// names the file.
func LoadFile(path string) (*KEK, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: key file %s does not exist (%w); restore it from where it is kept, or use seal.CreateFile for a new state only", ErrNoKey, path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: key file %s is not a regular file (%v)", ErrBadKey, path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %04o, which lets other users read or change it; run chmod 600 %s (and consider the key exposed if others could read it)", ErrBadKey, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("seal: reading key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: key file %s is larger than %d bytes; it does not hold a key", ErrBadKey, path, maxKeyFile)
	}
	key, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	defer clear(key)
	k, err := New(key)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	k.from = "key file " + path
	return k, nil
}

// CreateFile makes a new random 32-byte KEK and writes it, as hex, to a
// new file at path with mode 0600. It never replaces a file: an existing
// one is an error matching fs.ErrExist, since overwriting a key loses what
// it sealed. The write is durable (the file and its directory are synced)
// before CreateFile returns. Call it only for a new state; for an existing
// state a missing key is an error to report, not a key to make.
func CreateFile(path string) (*KEK, error) {
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	k, err := New(key)
	if err != nil {
		return nil, err
	}
	text := make([]byte, hex.EncodedLen(len(key))+1)
	defer clear(text)
	hex.Encode(text, key)
	text[len(text)-1] = '\n'

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("seal: key file %s already exists (%w); load it with seal.LoadFile instead of making a new key", path, fs.ErrExist)
		}
		return nil, fmt.Errorf("seal: creating key file %s: %w", path, err)
	}
	_, werr := f.Write(text)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("seal: writing key file %s: %w", path, werr)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	k.from = "key file " + path
	return k, nil
}

// LoadEnv reads the KEK from the environment variable name, as text (see
// Parse). An unset or empty variable is an error matching ErrNoKey.
func LoadEnv(name string) (*KEK, error) {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("%w: environment variable %s is not set", ErrNoKey, name)
	}
	k, err := Parse(v)
	if err != nil {
		return nil, fmt.Errorf("environment variable %s: %w", name, err)
	}
	k.from = "environment variable " + name
	return k, nil
}

// Load reads the KEK the way a command-line tool looks for it: from the
// environment variable env when it is set, otherwise from the file at
// path (see LoadFile). Either may be empty to skip it. When neither has a
// key, the error matches ErrNoKey and names both places.
func Load(env, path string) (*KEK, error) {
	if env != "" {
		if v, ok := os.LookupEnv(env); ok && strings.TrimSpace(v) != "" {
			return LoadEnv(env)
		}
	}
	if path == "" {
		if env == "" {
			return nil, fmt.Errorf("%w: no key file or environment variable named", ErrNoKey)
		}
		return nil, fmt.Errorf("%w: environment variable %s is not set", ErrNoKey, env)
	}
	k, err := LoadFile(path)
	if env != "" && errors.Is(err, ErrNoKey) {
		return nil, fmt.Errorf("%w (and environment variable %s is not set)", err, env)
	}
	return k, err
}
