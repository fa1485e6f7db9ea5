package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
)

// buildState writes a state file as a run leaves one: many transactions of
// journal-like records (some larger than a page), updates, deletes and a
// leased key, so the file has branch, leaf, overflow and freelist pages.
// It returns the keys and values that must be in it.
func buildState(t testing.TB, path string) map[string]string {
	s, err := bolt.Open(path, &bolt.Options{NoBackup: true})
	require.NoError(t, err)
	ctx := context.Background()
	want := map[string]string{}
	for i := range 60 {
		var ops []store.Op
		for j := range 5 {
			k := fmt.Sprintf("graph/prod/journal/n%02d/role-%d", i, j)
			v := fmt.Sprintf("%s:%s", k, bytes.Repeat([]byte{'a' + byte(j)}, 40+i*j*3))
			if i%17 == 3 && j == 0 {
				v += string(bytes.Repeat([]byte("big"), 3000)) // an overflow page
			}
			ops = append(ops, store.PutOp(k, []byte(v)))
			want[k] = v
		}
		_, err := s.Txn(ctx, ops...)
		require.NoError(t, err)
	}
	for i := 0; i < 60; i += 7 {
		k := fmt.Sprintf("graph/prod/journal/n%02d/role-1", i)
		require.NoError(t, s.Delete(ctx, k))
		delete(want, k)
	}
	id, err := s.Grant(ctx, time.Hour)
	require.NoError(t, err)
	_, err = s.Put(ctx, "graph/prod/claims/x", []byte("gone on reopen"), store.WithLease(id))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return want
}

// use does what a run does with a store and fails the test only on a
// panic (which ends the test binary) or an error that is neither nil nor
// ErrCorrupt.
func use(t testing.TB, s *bolt.Store) {
	ctx := context.Background()
	ok := func(err error) {
		if err != nil && !errors.Is(err, bolt.ErrCorrupt) {
			t.Fatalf("an error that is not ErrCorrupt: %v", err)
		}
	}
	ents, _, err := s.List(ctx, "")
	ok(err)
	for _, e := range ents {
		_, err := s.Get(ctx, e.Key)
		ok(err)
	}
	_, err = s.Put(ctx, "graph/prod/journal/new", bytes.Repeat([]byte("x"), 300))
	ok(err)
	ops := []store.Op{store.PutOp("a", []byte("1")), store.PutOp("b", bytes.Repeat([]byte("y"), 5000))}
	for _, e := range ents[:min(len(ents), 20)] {
		ops = append(ops, store.DeleteOp(e.Key))
	}
	_, err = s.Txn(ctx, ops...)
	ok(err)
	_, _, err = s.List(ctx, "graph/")
	ok(err)
	ok(s.Close())
}

// openDamaged writes data as the state file of a new directory and opens
// it; a refusal must be a *CorruptError naming the file.
func openDamaged(t testing.TB, data []byte) (*bolt.Store, string, error) {
	path := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	s, err := bolt.Open(path, &bolt.Options{NoBackup: true, LockTimeout: time.Second})
	if err != nil {
		var ce *bolt.CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("a damaged file gave an error that is not a *CorruptError: %v", err)
		}
		require.Equal(t, path, ce.Path)
		require.ErrorContains(t, err, path)
	}
	return s, path, err
}

// usedBytes reads the end of the last page in use from the newer of a
// bbolt file's meta pages (page header 16 bytes; page size at 8, high
// water mark at 40 and txid at 48 of the meta record).
func usedBytes(t testing.TB, data []byte) int {
	le := binary.LittleEndian
	ps := int(le.Uint32(data[16+8:]))
	m0, m1 := data[16:], data[ps+16:]
	m := m0
	if le.Uint64(m1[48:]) > le.Uint64(m0[48:]) {
		m = m1
	}
	return int(le.Uint64(m[40:])) * ps
}

func cleanState(t testing.TB) ([]byte, map[string]string) {
	path := filepath.Join(t.TempDir(), "state.db")
	want := buildState(t, path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data, want
}

// The faults found from outside (issue 21): a state file truncated to half
// or with data pages scribbled over crashed the process with bbolt's
// "invalid freelist page" from Open and "slice bounds out of range" from
// List. Every truncation point and every scribbled page is now an error
// naming the file, or a store that still works; never a panic.
func TestDamagedStateFile(t *testing.T) {
	clean, want := cleanState(t)
	const page = 4096
	pages := len(clean) / page
	t.Logf("state file: %d bytes, %d pages, %d records", len(clean), pages, len(want))
	refused := 0
	used := usedBytes(t, clean)
	t.Run("truncated", func(t *testing.T) {
		// bbolt grows a file ahead of use: a cut in the unused tail loses
		// nothing; any cut into the used pages is refused.
		for _, cut := range []int{1, 100, page, page + 1, 2 * page, used / 2, used - page, used - 1, used, len(clean) - 1} {
			s, _, err := openDamaged(t, clean[:cut])
			if cut >= used {
				require.NoError(t, err, "cut at %d of %d bytes, after the %d used", cut, len(clean), used)
				use(t, s)
				continue
			}
			require.ErrorIs(t, err, bolt.ErrCorrupt, "truncated to %d of %d bytes", cut, len(clean))
			require.ErrorContains(t, err, "truncated")
			refused++
		}
	})
	t.Run("page scribbled over", func(t *testing.T) {
		// Every page in use and the first unused one: its header (page
		// id, flags, count, overflow), its first elements, its middle.
		for p := range min(pages, used/page+1) {
			for _, at := range []int{0, 16, page / 2} {
				data := bytes.Clone(clean)
				for i := 0; i < 64 && p*page+at+i < len(data); i++ {
					data[p*page+at+i] ^= 0xA5
				}
				s, _, err := openDamaged(t, data)
				if err != nil {
					refused++
					continue
				}
				use(t, s)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		// An empty file is a new state (as a missing one is): telling a
		// lost state from a new one is the deployment identity's job.
		s, _, err := openDamaged(t, nil)
		require.NoError(t, err)
		use(t, s)
	})
	t.Logf("%d damaged files refused at Open", refused)
}

// A damaged file's error names the backup written when the file was last
// checked clean; RestoreBackup puts it back and the state is whole again.
func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	ctx := context.Background()
	want := buildState(t, path)
	// Opened and checked: the safe moment, a backup is written.
	s, err := bolt.Open(path, nil)
	require.NoError(t, err)
	_, err = os.Stat(bolt.BackupPath(path))
	require.NoError(t, err, "Open keeps a backup of a file it checked clean")
	_, err = s.Put(ctx, "graph/prod/journal/late", []byte("written after open"))
	require.NoError(t, err)
	want["graph/prod/journal/late"] = "written after open"
	require.NoError(t, s.Close()) // checked again and backed up
	fi, err := os.Stat(bolt.BackupPath(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// Half the file is lost.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o600))
	_, err = bolt.Open(path, nil)
	require.ErrorIs(t, err, bolt.ErrCorrupt)
	var ce *bolt.CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, bolt.BackupPath(path), ce.Backup)
	require.ErrorContains(t, err, "restore the backup")
	require.ErrorContains(t, err, bolt.BackupPath(path))
	after, err := os.ReadFile(bolt.BackupPath(path))
	require.NoError(t, err)
	require.NotEmpty(t, after, "a refused Open leaves the backup alone")

	aside, err := bolt.RestoreBackup(path)
	require.NoError(t, err)
	damaged, err := os.ReadFile(aside)
	require.NoError(t, err)
	require.Equal(t, data[:len(data)/2], damaged, "the damaged file is kept aside, not deleted")

	s, err = bolt.Open(path, nil)
	require.NoError(t, err)
	ents, _, err := s.List(ctx, "graph/prod/journal/")
	require.NoError(t, err)
	got := map[string]string{}
	for _, e := range ents {
		got[e.Key] = string(e.Value)
	}
	require.Equal(t, want, got, "everything written before the last clean close is back")

	// While the file is open, restoring is refused.
	_, err = bolt.RestoreBackup(path)
	require.ErrorIs(t, err, bolt.ErrLocked)
	require.NoError(t, s.Close())

	// A damaged backup is not restored.
	require.NoError(t, os.WriteFile(bolt.BackupPath(path), data[:4096], 0o600))
	_, err = bolt.RestoreBackup(path)
	require.ErrorIs(t, err, bolt.ErrCorrupt)
	require.ErrorContains(t, err, "cannot be restored")
}

// Damage that appears while a Store is open is found where bbolt reads it:
// the call fails with ErrCorrupt, and so does every later one.
func TestDamageWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	buildState(t, path)
	s, err := bolt.Open(path, &bolt.Options{NoBackup: true})
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	// Scribble over every page but the meta pages, under the open store.
	junk := bytes.Repeat([]byte{0xFF}, 4096)
	for off := int64(2 * 4096); off < fi.Size(); off += 4096 {
		_, err := f.WriteAt(junk, off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	_, _, err = s.List(context.Background(), "")
	require.ErrorIs(t, err, bolt.ErrCorrupt)
	require.ErrorContains(t, err, path)
	_, err = s.Put(context.Background(), "more", []byte("x"))
	require.ErrorIs(t, err, bolt.ErrCorrupt, "nothing more is written to a damaged file")
	_ = s.Close()
}

// Backup runs beside writes and gives a file that opens with everything
// committed before it started.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s, err := bolt.Open(filepath.Join(dir, "state.db"), nil)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Put(ctx, "before", []byte("1"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			_, _ = s.Put(ctx, fmt.Sprintf("during/%d", i), []byte("x"))
		}
	}()
	snap := filepath.Join(dir, "snap.db")
	require.NoError(t, s.Backup(snap))
	wg.Wait()
	require.NoError(t, s.Close())
	b, err := bolt.Open(snap, &bolt.Options{NoBackup: true})
	require.NoError(t, err)
	defer b.Close()
	e, err := b.Get(ctx, "before")
	require.NoError(t, err)
	require.Equal(t, "1", string(e.Value))
}

// FuzzDamagedStateFile truncates and flips bytes of a real state file at
// random: Open, and what a run does after it, never panic, and every
// refusal is a *CorruptError naming the file. flips is read as 5-byte
// (offset, xor mask) pairs.
//
//	go test ./store/bolt -run '^$' -fuzz FuzzDamagedStateFile -fuzztime 5m
func FuzzDamagedStateFile(f *testing.F) {
	clean, _ := cleanState(f)
	f.Add(uint32(0), []byte{})
	f.Add(uint32(len(clean)/2), []byte{})
	for _, off := range []uint32{0, 20, 4096 + 20, 2*4096 + 10, 3 * 4096, uint32(len(clean)) - 100} {
		var b [5]byte
		binary.LittleEndian.PutUint32(b[:], off)
		b[4] = 0x5a
		f.Add(uint32(0), b[:])
	}
	f.Fuzz(func(t *testing.T, cut uint32, flips []byte) {
		data := bytes.Clone(clean)
		for i := 0; i+5 <= len(flips); i += 5 {
			off := int(binary.LittleEndian.Uint32(flips[i:]) % uint32(len(data)))
			data[off] ^= flips[i+4]
		}
		if cut != 0 {
			data = data[:int(cut%uint32(len(data)+1))]
		}
		s, _, err := openDamaged(t, data)
		if err == nil {
			use(t, s)
		}
	})
}
