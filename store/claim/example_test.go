package claim_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/claim"
	"github.com/masonops/mason/store/mem"
)

// Two controllers share one store (here an in-memory one; with several
// processes, a store/etcd Store). Work is claimed before it runs, and
// journal writes are fenced by the claim.
func Example() {
	ctx := context.Background()
	st := mem.New()
	defer st.Close()

	a, _ := claim.NewSession(ctx, st, claim.Options{Prefix: "claims/", Owner: "ctl-a", TTL: 3 * time.Second})
	defer a.Close(ctx)
	b, _ := claim.NewSession(ctx, st, claim.Options{Prefix: "claims/", Owner: "ctl-b", TTL: 3 * time.Second})
	defer b.Close(ctx)

	c, err := a.Claim(ctx, "web-1/docker")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = b.Claim(ctx, "web-1/docker")
	fmt.Println(err)

	if _, err := c.Txn(ctx, store.PutOp("journal/web-1/docker", []byte("succeeded"))); err != nil {
		fmt.Println(err)
		return
	}
	_ = c.Release(ctx)

	// The released claim fences nothing any more.
	_, err = c.Txn(ctx, store.PutOp("journal/web-1/docker", []byte("late")))
	fmt.Println(errors.Is(err, claim.ErrLost))

	// And b can take the work now.
	_, err = b.Claim(ctx, "web-1/docker")
	fmt.Println(err)
	// Output:
	// claim: "web-1/docker" is held by "ctl-a" (since revision 1)
	// true
	// <nil>
}
