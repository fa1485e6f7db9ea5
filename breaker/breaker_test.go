package breaker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/breaker"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var errDown = errors.New("vcenter: 503 service unavailable")

func TestOpensAfterConsecutiveFailuresAndStopsCalling(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	var changes []string
	b := breaker.New(breaker.Options{Name: "vcenter", Failures: 3, OpenFor: 10 * time.Second, Now: clk.now,
		OnStateChange: func(name string, from, to breaker.State) { changes = append(changes, from.String()+"->"+to.String()) }})
	ctx := context.Background()
	var calls atomic.Int32
	failing := func(context.Context) error { calls.Add(1); return errDown }
	ok := func(context.Context) error { calls.Add(1); return nil }

	// A success in between resets the count: failures must be consecutive.
	require.ErrorIs(t, b.Do(ctx, failing), errDown)
	require.ErrorIs(t, b.Do(ctx, failing), errDown)
	require.NoError(t, b.Do(ctx, ok))
	for i := 0; i < 3; i++ {
		require.ErrorIs(t, b.Do(ctx, failing), errDown)
	}
	require.Equal(t, breaker.Open, b.State())
	require.EqualValues(t, 6, calls.Load())

	// Open: ten more calls, none reaches the remote side.
	for i := 0; i < 10; i++ {
		err := b.Do(ctx, failing)
		require.ErrorIs(t, err, breaker.ErrOpen)
		var oe *breaker.OpenError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, 3, oe.Failures)
		require.ErrorIs(t, err, errDown, "the error carries the failure that opened it")
	}
	require.EqualValues(t, 6, calls.Load())

	// After OpenFor, one probe; its failure re-opens at once.
	clk.add(10 * time.Second)
	require.Equal(t, breaker.HalfOpen, b.State())
	require.ErrorIs(t, b.Do(ctx, failing), errDown)
	require.Equal(t, breaker.Open, b.State())
	require.ErrorIs(t, b.Do(ctx, ok), breaker.ErrOpen)

	// Next probe succeeds: closed again.
	clk.add(10 * time.Second)
	require.NoError(t, b.Do(ctx, ok))
	require.Equal(t, breaker.Closed, b.State())
	require.Equal(t, []string{"closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed"}, changes)
}

func TestHalfOpenAllowsLimitedProbesAndIgnoresCancellation(t *testing.T) {
	clk := &clock{t: time.Unix(0, 0)}
	b := breaker.New(breaker.Options{Failures: 1, OpenFor: time.Second, HalfOpenProbes: 2, Now: clk.now})
	ctx := context.Background()

	// The caller's own cancellation says nothing about the remote side.
	require.ErrorIs(t, b.Do(ctx, func(context.Context) error { return context.Canceled }), context.Canceled)
	require.Equal(t, breaker.Closed, b.State())

	require.Error(t, b.Do(ctx, func(context.Context) error { return errDown }))
	clk.add(time.Second)
	d1, err := b.Allow()
	require.NoError(t, err)
	d2, err := b.Allow()
	require.NoError(t, err)
	_, err = b.Allow()
	require.ErrorIs(t, err, breaker.ErrOpen, "only two probes at once")
	d1(nil)
	d2(nil)
	d2(errDown) // a second report of the same call is ignored
	require.Equal(t, breaker.Closed, b.State())
}

func TestConcurrentUse(t *testing.T) {
	b := breaker.New(breaker.Options{Failures: 1000})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				_ = b.Do(context.Background(), func(context.Context) error {
					if j%2 == 0 {
						return errDown
					}
					return nil
				})
			}
		}()
	}
	wg.Wait()
	require.Equal(t, breaker.Closed, b.State())
}
