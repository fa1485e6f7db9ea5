package store_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// Every backend offers the same small contract: revisions, compare-and-swap,
// atomic transactions, watches and leases.
func Example() {
	ctx := context.Background()
	s := mem.New() // or bolt.Open("state.db", nil), or the etcd backend
	defer s.Close()

	rev, _ := s.CompareAndSwap(ctx, "ipam/10.0.0.5", 0, []byte("n1")) // create only
	_, err := s.CompareAndSwap(ctx, "ipam/10.0.0.5", 0, []byte("n2"))
	fmt.Println("second claim:", errors.Is(err, store.ErrConflict))

	// Watch from just after a revision: nothing is missed in between.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, _ := s.Watch(wctx, "ipam/", rev+1)
	_, _ = s.Txn(ctx, store.PutOp("ipam/10.0.0.6", []byte("n2")), store.CheckOp("ipam/10.0.0.5", rev))
	ev := <-events
	fmt.Println(ev.Type, ev.Key)

	// A lock whose fencing token guards writes made on its behalf.
	l, _ := store.Acquire(ctx, s, "locks/apply", "controller-1", 10*time.Second)
	_, err = s.Txn(ctx, store.PutOp("journal/x", []byte("ok")), store.CheckOp(l.Key(), l.Fence()))
	fmt.Println("fenced write:", err)
	_ = l.Release(ctx)
	// Output:
	// second claim: true
	// put ipam/10.0.0.6
	// fenced write: <nil>
}

// A lock someone else holds is refused at once by TryAcquire, naming the
// holder as recorded when the lock was taken.
func ExampleTryAcquire() {
	ctx := context.Background()
	s := mem.New()
	defer s.Close()
	held, _ := store.Acquire(ctx, s, "locks/nodes/prod", "mason apply", 10*time.Second)
	defer held.Release(ctx)

	_, err := store.TryAcquire(ctx, s, "locks/nodes/prod", "mason destroy", 10*time.Second)
	var le *store.LockedError
	if errors.As(err, &le) {
		fmt.Println(errors.Is(err, store.ErrLocked), le.Holder.Owner, le.Holder.ThisProcess())
	}
	// Output:
	// true mason apply true
}
