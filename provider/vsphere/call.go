package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/masonops/mason/breaker"
)

// guard sends every SOAP call through the circuit breaker. A call that
// reached vCenter and got an answer — even a fault such as NotFound —
// counts as a success; transport errors and server-side faults
// (SystemError, HostCommunication, ...) count as failures.
type guard struct {
	next soap.RoundTripper
	br   *breaker.Breaker
}

func (g *guard) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	return g.call(ctx, func() error { return g.next.RoundTrip(ctx, req, res) })
}

// call runs fn through the breaker, classifying its error.
func (g *guard) call(ctx context.Context, fn func() error) error {
	done, err := g.br.Allow()
	if err != nil {
		return err
	}
	err = fn()
	switch {
	case err == nil:
		done(nil)
	case ctx.Err() != nil:
		done(callerGone{err}) // our caller gave up; vCenter is not to blame
	case transient(err):
		done(err)
	default:
		done(nil) // vCenter answered, with a fault that is about the request
	}
	return err
}

// callerGone marks an error caused by the caller's own context.
type callerGone struct{ err error }

func (c callerGone) Error() string { return c.err.Error() }
func (c callerGone) Unwrap() error { return c.err }

func isFailure(err error) bool {
	var cg callerGone
	return !errors.As(err, &cg)
}

// transient reports whether err is worth retrying: a transport error or a
// server-side fault, not a fault about the request itself, not an open
// breaker and not the caller's own cancellation.
func transient(err error) bool {
	var pe *backoff.PermanentError
	if err == nil || errors.Is(err, breaker.ErrOpen) || errors.As(err, &pe) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		soap.IsCertificateUntrusted(err) {
		return false
	}
	if f := methodFault(err); f != nil {
		switch f.(type) {
		case *types.SystemError, *types.SystemErrorFault, *types.HostCommunication,
			*types.HostNotConnected, *types.HostNotReachable, *types.TaskInProgress,
			*types.RuntimeFault, *types.NetworkDisruptedAndConfigRolledBack:
			return true
		}
		return fault.IsTransientError(err)
	}
	return true // no fault: the request or the response was lost on the way
}

// methodFault returns the vSphere fault inside err, or nil when err is not
// a fault (a transport error).
func methodFault(err error) types.BaseMethodFault {
	// SOAP faults, VIM faults and task errors all offer Fault().
	var h interface{ Fault() types.BaseMethodFault }
	if errors.As(err, &h) {
		if f := h.Fault(); f != nil {
			return f
		}
		return &types.RuntimeFault{}
	}
	return nil
}

// isFault reports whether err carries a vSphere fault of target's type.
func isFault(err error, target types.BaseMethodFault) bool {
	return err != nil && methodFault(err) != nil && fault.Is(err, target)
}

// retry runs op until it succeeds, fails with a non-transient error, the
// breaker opens, RetryFor passes, or ctx ends.
func (d *Driver) retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d.cfg.PollInterval),
		backoff.WithMaxInterval(d.cfg.MaxPollInterval),
		backoff.WithMaxElapsedTime(d.cfg.RetryFor),
	)
	attempt := 0
	start := time.Now()
	var last error
	err := backoff.Retry(func() error {
		attempt++
		err := op(ctx)
		if err == nil {
			return nil
		}
		last = err
		if !transient(err) {
			return backoff.Permanent(err)
		}
		d.log.Warn("vCenter call failed; retrying", "op", what, "attempt", attempt, "err", err)
		return err
	}, backoff.WithContext(b, ctx))
	if err == nil {
		return nil
	}
	if last == nil {
		last = err
	}
	var pe *backoff.PermanentError
	if errors.As(last, &pe) {
		last = pe.Err
	}
	if errors.Is(last, breaker.ErrOpen) {
		return fmt.Errorf("%s: vCenter calls are suspended: %w", what, last)
	}
	if transient(last) {
		return fmt.Errorf("%s: still failing after %d attempts in %s; check vCenter health: %w",
			what, attempt, time.Since(start).Round(time.Millisecond), last)
	}
	return fmt.Errorf("%s: %w", what, last)
}

// stop marks an error of the driver's own as not worth retrying.
func stop(err error) error { return backoff.Permanent(err) }

// relogin logs in again when vCenter has dropped the session (idle
// timeout, vCenter restart) and repeats the call once. Long-running
// controllers would otherwise fail every call with NotAuthenticated.
type relogin struct {
	next  soap.RoundTripper
	login func(ctx context.Context) error
	log   *slog.Logger

	mu  sync.Mutex
	gen uint64 // bumped by every successful re-login
}

func (r *relogin) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	switch req.(type) {
	case *methods.LoginBody, *methods.LogoutBody:
		return r.next.RoundTrip(ctx, req, res)
	}
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	err := r.next.RoundTrip(ctx, req, res)
	if err == nil || !isFault(err, &types.NotAuthenticated{}) {
		return err
	}
	r.mu.Lock()
	if r.gen == gen { // nobody logged in again since our call started
		if lerr := r.login(ctx); lerr != nil {
			r.mu.Unlock()
			return fmt.Errorf("vCenter session expired and logging in again failed: %w", lerr)
		}
		r.gen++
		r.log.Info("vCenter session expired; logged in again")
	}
	r.mu.Unlock()
	// The failed call left its fault in res; start from a clean body.
	if v := reflect.ValueOf(res); v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().Set(reflect.Zero(v.Elem().Type()))
	}
	return r.next.RoundTrip(ctx, req, res)
}
