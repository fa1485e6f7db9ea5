package breaker_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/masonops/mason/breaker"
)

// Wrap every call to a flaky API; after three consecutive failures the
// breaker answers for the API until it has had time to recover.
func Example() {
	b := breaker.New(breaker.Options{Name: "vcenter", Failures: 3})
	down := errors.New("503 service unavailable")
	for i := 0; i < 5; i++ {
		err := b.Do(context.Background(), func(ctx context.Context) error { return down })
		fmt.Println(i, errors.Is(err, breaker.ErrOpen), b.State())
	}
	// Output:
	// 0 false closed
	// 1 false closed
	// 2 false open
	// 3 true open
	// 4 true open
}
