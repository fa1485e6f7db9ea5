package seal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

// A program that keeps secrets in its state: load the key where the
// operator keeps it, refuse a wrong key before writing anything, seal each
// secret for the record it lives in, and digest secrets with a keyed
// digest kept sealed in the state.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "seal-example")
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "kek")
	st := mem.New() // the state: a bbolt file or etcd in a real program
	defer st.Close()

	// First run only: the state is new, so a new key is made (mode 0600).
	// Every later run loads it; MASON_KEK, when set, takes precedence.
	if _, err := seal.CreateFile(keyFile); err != nil {
		fmt.Println(err)
		return
	}
	kek, err := seal.Load("MASON_KEK", keyFile)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Before anything is sealed: is this the state's key?
	recorded, err := seal.Check(ctx, st, "app/key-check", kek)
	fmt.Println("check value recorded:", recorded, err)

	// A secret output, sealed for the record it is stored in.
	record := []byte("journal/web-1/swarm-manager")
	sealed, _ := kek.Seal([]byte("SWMTKN-1-secret"), record)
	_, _ = st.Put(ctx, string(record), sealed)

	e, _ := st.Get(ctx, string(record))
	token, err := kek.Open(e.Value, record)
	fmt.Println(string(token), err)
	// Copied to another record, it does not open.
	_, err = kek.Open(e.Value, []byte("journal/web-2/swarm-manager"))
	fmt.Println("moved:", errors.Is(err, seal.ErrWrongKey))

	// Input digests of secrets are keyed; the digest key lives sealed in
	// the state, made once per deployment.
	dk, _ := seal.NewDigestKey()
	sealedDK, _ := kek.SealDigestKey(dk, []byte("app/digest-key"))
	_, _ = st.Put(ctx, "app/digest-key", sealedDK)
	e, _ = st.Get(ctx, "app/digest-key")
	dk2, _ := kek.OpenDigestKey(e.Value, []byte("app/digest-key"))
	fmt.Println("same digest after reload:", dk.Sum(token) == dk2.Sum(token))

	// A run with another key is refused before it seals anything.
	other, _ := seal.Generate()
	_, err = seal.Check(ctx, st, "app/key-check", other)
	fmt.Println("other key:", errors.Is(err, seal.ErrWrongKey))
	// Output:
	// check value recorded: true <nil>
	// SWMTKN-1-secret <nil>
	// moved: true
	// same digest after reload: true
	// other key: true
}

// Key files other users can read are refused, naming the file.
func ExampleLoadFile() {
	dir, _ := os.MkdirTemp("", "seal-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "kek")
	_ = os.WriteFile(path, []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"), 0o644)

	_, err := seal.LoadFile(path)
	fmt.Println(errors.Is(err, seal.ErrBadKey))

	_ = os.Chmod(path, 0o600)
	kek, err := seal.LoadFile(path)
	fmt.Println(kek, err)

	_, err = seal.LoadFile(filepath.Join(dir, "missing"))
	fmt.Println(errors.Is(err, seal.ErrNoKey))
	// Output:
	// true
	// key ce6739 <nil>
	// true
}
