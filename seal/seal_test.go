package seal_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

func rawKey(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestNewKeySizes(t *testing.T) {
	for _, n := range []int{0, 8, 15, 16, 24, 31, 32, 33, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			k, err := seal.New(make([]byte, n))
			if n == 16 || n == 24 || n == 32 {
				require.NoError(t, err)
				require.NotNil(t, k)
				return
			}
			require.ErrorIs(t, err, seal.ErrBadKey)
			require.ErrorContains(t, err, fmt.Sprintf("got %d bytes", n))
		})
	}
}

func TestSealOpen(t *testing.T) {
	k, err := seal.New(rawKey(t, 32))
	require.NoError(t, err)
	other, err := seal.Generate()
	require.NoError(t, err)
	ad := []byte("pki/etcd/gen/1/root")
	plain := []byte("private key bytes")
	sealed, err := k.Seal(plain, ad)
	require.NoError(t, err)
	require.Len(t, sealed, seal.NonceSize+len(plain)+seal.Overhead)
	require.False(t, bytes.Contains(sealed, plain))
	again, err := k.Seal(plain, ad)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "a fresh nonce every time")

	got, err := k.Open(sealed, ad)
	require.NoError(t, err)
	require.Equal(t, plain, got)

	flipped := bytes.Clone(sealed)
	flipped[seal.NonceSize+2] ^= 1
	tests := []struct {
		name   string
		k      *seal.KEK
		sealed []byte
		ad     []byte
		msg    string
	}{
		{"other key", other, sealed, ad, "does not open with key " + other.Fingerprint()},
		{"other place", k, sealed, []byte("pki/kube/gen/1/root"), "moved from another place"},
		{"no associated data", k, sealed, nil, "moved from another place"},
		{"altered", k, flipped, ad, "altered"},
		{"truncated", k, sealed[:seal.NonceSize+seal.Overhead-1], ad, "truncated"},
		{"empty", k, nil, ad, "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.k.Open(tc.sealed, tc.ad)
			require.ErrorIs(t, err, seal.ErrWrongKey)
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), string(plain))
		})
	}
}

// The sealed format is the one pki wrote before this package existed:
// nonce || AES-GCM ciphertext and tag, the associated data not stored.
func TestFormatIsNoncePrefixedGCM(t *testing.T) {
	key := rawKey(t, 32)
	b, err := aes.NewCipher(key)
	require.NoError(t, err)
	g, err := cipher.NewGCM(b)
	require.NoError(t, err)
	nonce := rawKey(t, g.NonceSize())
	ad := []byte("pki/etcd/leaf/abc")
	ext := g.Seal(bytes.Clone(nonce), nonce, []byte("hello"), ad)

	k, err := seal.New(key)
	require.NoError(t, err)
	got, err := k.Open(ext, ad)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))

	ours, err := k.Seal([]byte("hello"), ad)
	require.NoError(t, err)
	back, err := g.Open(nil, ours[:seal.NonceSize], ours[seal.NonceSize:], ad)
	require.NoError(t, err)
	require.Equal(t, "hello", string(back))
}

func TestCheckValue(t *testing.T) {
	key := rawKey(t, 32)
	k1, _ := seal.New(key)
	k2, _ := seal.New(key)
	other, _ := seal.Generate()
	require.Len(t, k1.CheckValue(), seal.CheckSize)
	require.Equal(t, k1.CheckValue(), k2.CheckValue(), "same key, same check value")
	require.NotEqual(t, k1.CheckValue(), other.CheckValue())
	require.False(t, bytes.Contains(k1.CheckValue(), key[:8]))
	require.NoError(t, k2.Verify(k1.CheckValue()))
	err := other.Verify(k1.CheckValue())
	require.ErrorIs(t, err, seal.ErrWrongKey)
	var me *seal.MismatchError
	require.ErrorAs(t, err, &me)
	require.Equal(t, k1.Fingerprint(), me.Want)
	require.Equal(t, other.Fingerprint(), me.Have)
	require.ErrorIs(t, k1.Verify(nil), seal.ErrWrongKey)
}

func TestCheckInStore(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	k, _ := seal.Generate()
	other, _ := seal.Generate()

	recorded, err := seal.Check(ctx, st, "x/key-check", k)
	require.NoError(t, err)
	require.True(t, recorded)
	e, err := st.Get(ctx, "x/key-check")
	require.NoError(t, err)
	require.Equal(t, k.CheckValue(), e.Value)

	recorded, err = seal.Check(ctx, st, "x/key-check", k)
	require.NoError(t, err)
	require.False(t, recorded)

	_, err = seal.Check(ctx, st, "x/key-check", other)
	require.ErrorIs(t, err, seal.ErrWrongKey)
	require.ErrorContains(t, err, "recorded at x/key-check")
	require.ErrorContains(t, err, "key "+k.Fingerprint())
	e2, err := st.Get(ctx, "x/key-check")
	require.NoError(t, err)
	require.Equal(t, e.Revision, e2.Revision, "a refused key writes nothing")
}

// Two controllers starting together on a new state with different keys:
// exactly one key is recorded, the other is refused.
func TestCheckRace(t *testing.T) {
	ctx := context.Background()
	for range 20 {
		st := mem.New()
		keys := make([]*seal.KEK, 4)
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			keys[i], _ = seal.Generate()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = seal.Check(ctx, st, "k", keys[i])
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				require.ErrorIs(t, err, seal.ErrWrongKey)
			}
		}
		require.Equal(t, 1, ok)
		st.Close()
	}
}

func TestLoadFile(t *testing.T) {
	key := rawKey(t, 32)
	k0, _ := seal.New(key)
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	tests := []struct {
		name string
		path string
		want error // nil: loads k0
		msg  string
	}{
		{"raw bytes", write("raw", key, 0o600), nil, ""},
		{"hex", write("hex", []byte(hex.EncodeToString(key)), 0o600), nil, ""},
		{"hex and newline", write("hexnl", []byte(hex.EncodeToString(key)+"\n"), 0o400), nil, ""},
		{"base64", write("b64", []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600), nil, ""},
		{"readable by group", write("group", key, 0o640), seal.ErrBadKey, "chmod 600"},
		{"readable by all", write("world", key, 0o644), seal.ErrBadKey, "has mode 0644"},
		{"wrong length", write("short", []byte("0011"), 0o600), seal.ErrBadKey, "got 2 bytes"},
		{"garbage", write("garbage", []byte("not a key at all, really not"), 0o600), seal.ErrBadKey, "neither hex nor base64"},
		{"too large", write("large", bytes.Repeat([]byte("a"), 4096), 0o600), seal.ErrBadKey, "larger than"},
		{"missing", filepath.Join(dir, "missing"), seal.ErrNoKey, "does not exist"},
		{"directory", dir, seal.ErrBadKey, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := seal.LoadFile(tc.path)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, k0.CheckValue(), k.CheckValue())
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.path, "the error names the file")
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), hex.EncodeToString(key))
		})
	}
	_, err := seal.LoadFile(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestCreateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	k, err := seal.CreateFile(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	back, err := seal.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, k.CheckValue(), back.CheckValue())

	before, _ := os.ReadFile(path)
	_, err = seal.CreateFile(path)
	require.ErrorIs(t, err, fs.ErrExist)
	require.ErrorContains(t, err, path)
	after, _ := os.ReadFile(path)
	require.Equal(t, before, after, "an existing key is never replaced")

	_, err = seal.CreateFile(filepath.Join(t.TempDir(), "no", "such", "dir", "kek"))
	require.ErrorContains(t, err, "creating key file")
}

func TestLoadEnv(t *testing.T) {
	key := rawKey(t, 32)
	k0, _ := seal.New(key)
	path := filepath.Join(t.TempDir(), "kek")
	require.NoError(t, os.WriteFile(path, key, 0o600))
	fileKey, _ := seal.LoadFile(path)

	t.Setenv("SEAL_TEST_KEK", hex.EncodeToString(key))
	k, err := seal.LoadEnv("SEAL_TEST_KEK")
	require.NoError(t, err)
	require.Equal(t, k0.CheckValue(), k.CheckValue())

	t.Setenv("SEAL_TEST_BAD", "xyz")
	_, err = seal.LoadEnv("SEAL_TEST_BAD")
	require.ErrorIs(t, err, seal.ErrBadKey)
	require.ErrorContains(t, err, "SEAL_TEST_BAD")

	_, err = seal.LoadEnv("SEAL_TEST_UNSET")
	require.ErrorIs(t, err, seal.ErrNoKey)
	require.ErrorContains(t, err, "SEAL_TEST_UNSET")

	// Load: the variable wins when set; otherwise the file; neither names both.
	t.Setenv("SEAL_TEST_KEK2", base64.StdEncoding.EncodeToString(rawKey(t, 32)))
	k, err = seal.Load("SEAL_TEST_KEK2", path)
	require.NoError(t, err)
	require.NotEqual(t, fileKey.CheckValue(), k.CheckValue())
	k, err = seal.Load("SEAL_TEST_UNSET", path)
	require.NoError(t, err)
	require.Equal(t, fileKey.CheckValue(), k.CheckValue())
	_, err = seal.Load("SEAL_TEST_UNSET", path+".missing")
	require.ErrorIs(t, err, seal.ErrNoKey)
	require.ErrorContains(t, err, path+".missing")
	require.ErrorContains(t, err, "SEAL_TEST_UNSET")
	_, err = seal.Load("", "")
	require.ErrorIs(t, err, seal.ErrNoKey)
}

// No way of printing, logging or encoding a key shows its bytes.
func TestNeverPrinted(t *testing.T) {
	key := rawKey(t, 32)
	k, _ := seal.New(key)
	dk, _ := seal.NewDigestKey()
	type holder struct {
		K  *seal.KEK
		KV seal.KEK
		D  *seal.DigestKey
	}
	h := holder{K: k, KV: *k, D: dk}
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out = append(out, fmt.Sprintf(f, k), fmt.Sprintf(f, *k), fmt.Sprintf(f, h), fmt.Sprintf(f, dk))
	}
	j, err := json.Marshal(h)
	require.NoError(t, err)
	out = append(out, string(j))
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "kek", k, "digest", dk, "holder", h)
	out = append(out, logged.String())
	all := strings.Join(out, "\n")
	for _, enc := range []string{hex.EncodeToString(key), hex.EncodeToString(key[:6]), base64.StdEncoding.EncodeToString(key)[:10], string(key[:6])} {
		require.NotContains(t, all, enc)
	}
	require.Contains(t, all, "key "+k.Fingerprint())
}

func TestDigestKey(t *testing.T) {
	k, _ := seal.Generate()
	d1, err := seal.NewDigestKey()
	require.NoError(t, err)
	d2, _ := seal.NewDigestKey()
	secret := []byte("hunter2")
	require.NotEqual(t, d1.Sum(secret), d2.Sum(secret), "per-deployment keys give different digests")
	require.Equal(t, d1.Sum([]byte("hun"), []byte("ter2")), d1.Sum(secret), "parts are concatenated")
	h := d1.Hash()
	h.Write(secret)
	got := d1.Sum(secret)
	require.Equal(t, got[:], h.Sum(nil))

	ad := []byte("graph/prod/digest-key")
	sealed, err := k.SealDigestKey(d1, ad)
	require.NoError(t, err)
	back, err := k.OpenDigestKey(sealed, ad)
	require.NoError(t, err)
	require.Equal(t, d1.Sum(secret), back.Sum(secret))
	other, _ := seal.Generate()
	_, err = other.OpenDigestKey(sealed, ad)
	require.ErrorIs(t, err, seal.ErrWrongKey)
	notAKey, _ := k.Seal([]byte("short"), ad)
	_, err = k.OpenDigestKey(notAKey, ad)
	require.ErrorIs(t, err, seal.ErrBadKey)
	require.False(t, errors.Is(err, seal.ErrWrongKey))
}
