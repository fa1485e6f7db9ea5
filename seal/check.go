package seal

import (
	"context"
	"errors"
	"fmt"

	"github.com/masonops/mason/store"
)

// Check compares k with the check value stored at key in st. When st has
// none, Check records k's (create-only, so of two controllers starting on
// a new state with different keys one is refused) and reports recorded.
// A mismatch is a *MismatchError naming key, matching ErrWrongKey; nothing
// is written then.
//
// Call it before sealing anything into st. Whether a missing check value
// may be recorded is the caller's decision to make first: on a state that
// already holds values sealed before check values existed, open one of
// them with k (which fails with ErrWrongKey for another key) before
// calling Check, as package pki does.
func Check(ctx context.Context, st store.Store, key string, k *KEK) (recorded bool, err error) {
	for range 2 {
		e, err := st.Get(ctx, key)
		switch {
		case err == nil:
			return false, verifyAt(k, e.Value, key)
		case !errors.Is(err, store.ErrNotFound):
			return false, fmt.Errorf("seal: reading the key check value at %s: %w", key, err)
		}
		_, err = st.CompareAndSwap(ctx, key, 0, k.CheckValue())
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return false, fmt.Errorf("seal: recording the key check value at %s: %w", key, err)
		}
		// Someone recorded one first: compare with theirs.
	}
	return false, fmt.Errorf("seal: the key check value at %s keeps changing; is something deleting it?", key)
}

func verifyAt(k *KEK, check []byte, where string) error {
	err := k.Verify(check)
	var me *MismatchError
	if errors.As(err, &me) {
		me.Where = where
	}
	return err
}
