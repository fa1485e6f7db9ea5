package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/masonops/mason/store/bolt"
)

// A state file damaged on disk is refused with an error that names it and
// its backup; RestoreBackup puts the backup back in place.
func ExampleRestoreBackup() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "bolt-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.db")

	s, _ := bolt.Open(path, nil)
	_, _ = s.Put(ctx, "journal/web-1", []byte("succeeded"))
	_ = s.Close() // checked and kept as the backup

	data, _ := os.ReadFile(path)
	_ = os.WriteFile(path, data[:len(data)/8], 0o600) // most of it lost

	_, err := bolt.Open(path, nil)
	var ce *bolt.CorruptError
	if errors.As(err, &ce) {
		fmt.Println(errors.Is(err, bolt.ErrCorrupt), filepath.Base(ce.Backup))
	}

	if _, err := bolt.RestoreBackup(path); err != nil {
		fmt.Println(err)
		return
	}
	s, _ = bolt.Open(path, nil)
	defer s.Close()
	e, _ := s.Get(ctx, "journal/web-1")
	fmt.Println(string(e.Value))
	// Output:
	// true state.db.backup
	// succeeded
}
