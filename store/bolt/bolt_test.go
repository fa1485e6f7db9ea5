package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), nil)
		require.NoError(t, err)
		return s
	})
}

// The child half of the subprocess tests: it opens the file, writes, says
// "ready" and waits to be killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("MASON_BOLT_CHILD"); path != "" {
		if os.Getenv("MASON_BOLT_CHILD_CHURN") == "1" {
			churn(path)
		}
		child(path, os.Getenv("MASON_BOLT_CHILD_WRITES") == "1")
		return
	}
	os.Exit(m.Run())
}

func child(path string, write bool) {
	s, err := bolt.Open(path, nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	if write {
		for i := 0; i < 100; i++ {
			if _, err := s.Put(ctx, fmt.Sprintf("journal/%03d", i), []byte(fmt.Sprint(i))); err != nil {
				fmt.Println("put failed:", err)
				os.Exit(3)
			}
		}
		id, _ := s.Grant(ctx, time.Hour)
		if _, err := s.Put(ctx, "claims/held", []byte("me"), store.WithLease(id)); err != nil {
			fmt.Println("put failed:", err)
			os.Exit(3)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed by the parent long before this
	os.Exit(4)
}

// churn writes until killed: transactions of small and page-sized puts
// and deletes, so a kill lands in the middle of page splits, merges and
// freelist changes.
func churn(path string) {
	s, err := bolt.Open(path, &bolt.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	ctx := context.Background()
	for i := 0; ; i++ {
		var ops []store.Op
		for j := range 1 + i%7 {
			k := fmt.Sprintf("journal/%03d/%d", (i*7+j)%300, j)
			if (i+j)%5 == 0 {
				ops = append(ops, store.DeleteOp(k))
			} else {
				ops = append(ops, store.PutOp(k, []byte(strings.Repeat("v", 10+(i*j*37)%5000))))
			}
		}
		if _, err := s.Txn(ctx, ops...); err != nil {
			fmt.Println("txn failed:", err)
			os.Exit(3)
		}
	}
}

// startChild runs the test binary as a child holding the store open; it
// returns once the child said ready, and kills it at cleanup.
func startChild(t *testing.T, path string, write bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MASON_BOLT_CHILD="+path)
	if write {
		cmd.Env = append(cmd.Env, "MASON_BOLT_CHILD_WRITES=1")
	}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready", strings.TrimSpace(line))
	return cmd
}

// A file whose writer was killed at any moment is whole: Open's checks
// never take bbolt's crash safety for damage.
func TestKilledMidWriteIsNotDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	for kill := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MASON_BOLT_CHILD="+path, "MASON_BOLT_CHILD_CHURN=1")
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ready", strings.TrimSpace(line))
		time.Sleep(time.Duration(50+kill*37) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		s, err := bolt.Open(path, &bolt.Options{LockTimeout: 5 * time.Second})
		require.NoError(t, err, "kill %d", kill)
		_, _, err = s.List(context.Background(), "")
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
}

func TestSurvivesKilledProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := startChild(t, path, true)
	// SIGKILL: no deferred close, no flush; only fsync'd data survives.
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	s, err := bolt.Open(path, nil)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	ents, rev, err := s.List(ctx, "journal/")
	require.NoError(t, err)
	require.Len(t, ents, 100, "every acknowledged write survives the kill")
	for i, e := range ents {
		require.Equal(t, fmt.Sprint(i), string(e.Value))
	}
	_, err = s.Get(ctx, "claims/held")
	require.ErrorIs(t, err, store.ErrNotFound, "keys of the dead process's leases are gone")

	// Revisions continue where the dead process left off.
	next, err := s.Put(ctx, "after", nil)
	require.NoError(t, err)
	require.Greater(t, next, rev)
	require.Greater(t, rev, int64(100))
}

func TestSecondOpenerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := startChild(t, path, false)

	start := time.Now()
	_, err := bolt.Open(path, &bolt.Options{LockTimeout: 200 * time.Millisecond})
	require.ErrorIs(t, err, bolt.ErrLocked)
	require.ErrorContains(t, err, path, "the error names the file")
	require.Less(t, time.Since(start), 10*time.Second, "refused promptly, not after a hang")
	// ...and who has it: the child, recorded when it opened the file.
	var le *store.LockedError
	require.ErrorAs(t, err, &le)
	require.Equal(t, cmd.Process.Pid, le.Holder.PID)
	require.False(t, le.Holder.ThisProcess())
	require.WithinDuration(t, time.Now(), le.Holder.Since, time.Minute)
	require.ErrorContains(t, err, fmt.Sprintf("pid %d", cmd.Process.Pid))
	require.ErrorContains(t, err, "stop that process or wait for it to finish")

	// Within one process, a second Open of an open file is refused too,
	// and says so.
	other := filepath.Join(t.TempDir(), "other.db")
	s, err := bolt.Open(other, &bolt.Options{Owner: "first opener"})
	require.NoError(t, err)
	_, err = bolt.Open(other, nil)
	require.ErrorIs(t, err, bolt.ErrLocked)
	require.ErrorAs(t, err, &le)
	require.True(t, le.Holder.ThisProcess())
	require.ErrorContains(t, err, "is already held by this process (first opener)")
	require.ErrorContains(t, err, "close the store that has it open")

	// Closed, the file is free and its holder record gone.
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = os.Stat(other + ".holder")
	require.ErrorIs(t, err, os.ErrNotExist)
	s, err = bolt.Open(other, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// A holder record left by a process that died names nobody: the lock is
// then someone else's (a program that writes no record, such as the bbolt
// tool).
func TestStaleHolderRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	host, _ := os.Hostname()
	stale := store.Holder{Owner: "crashed", PID: dead.Process.Pid, Host: host, Since: time.Now()}
	require.NoError(t, os.WriteFile(path+".holder", stale.Marshal(), 0o600))
	startChild(t, path, false) // overwrites the record: use a copy of the lock
	require.NoError(t, os.WriteFile(path+".holder", stale.Marshal(), 0o600))
	_, err := bolt.Open(path, &bolt.Options{LockTimeout: 100 * time.Millisecond})
	require.ErrorIs(t, err, bolt.ErrLocked)
	var le *store.LockedError
	require.ErrorAs(t, err, &le)
	require.False(t, le.Holder.Known())
	require.ErrorContains(t, err, "is held by someone else")
}

func TestFileModeAndPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := bolt.Open(path, nil)
	require.NoError(t, err)
	require.Equal(t, path, s.Path())
	require.NoError(t, s.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "state may hold secrets: owner-only by default")
}
