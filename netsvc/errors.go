package netsvc

import (
	"errors"
	"fmt"
)

// Errors every implementation returns, wrapped; test with errors.Is. The
// daemon's client reconstructs them from the daemon's answers, so callers
// branch the same way on embedded and remote services.
var (
	// ErrUnknownZone: the DNS server is not authoritative for the zone.
	ErrUnknownZone = errors.New("netsvc: unknown zone")
	// ErrNotFound: the named range or frontend does not exist.
	ErrNotFound = errors.New("netsvc: not found")
	// ErrExhausted: the range has no free address left.
	ErrExhausted = errors.New("netsvc: address range exhausted")
	// ErrAddrInUse: the requested address is held by another owner, or
	// the owner already holds a different address.
	ErrAddrInUse = errors.New("netsvc: address in use")
	// ErrInvalid: the request is malformed (bad name, value, address).
	ErrInvalid = errors.New("netsvc: invalid request")
	// ErrExists: a different object already exists under that name.
	ErrExists = errors.New("netsvc: already exists with different settings")
)

// ExhaustedError reports a full range. It matches ErrExhausted.
type ExhaustedError struct {
	Range string
	// Size is the number of addresses the range can hand out.
	Size string
}

// Error says which range is full and what to do.
func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("netsvc: range %q is exhausted (all %s addresses allocated or reserved): release addresses or add a range", e.Range, e.Size)
}

// Is makes errors.Is(err, ErrExhausted) true.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Code names the sentinel err matches, for carrying errors over the wire;
// it returns "" for errors that match none.
func Code(err error) string {
	for _, c := range codes() {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// FromCode returns the sentinel error named by code, or nil.
func FromCode(code string) error {
	for _, c := range codes() {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// codes pairs every sentinel with its name on the wire, in the order Code
// tries them.
func codes() [6]struct {
	code string
	err  error
} {
	return [6]struct {
		code string
		err  error
	}{
		{"unknown_zone", ErrUnknownZone},
		{"not_found", ErrNotFound},
		{"exhausted", ErrExhausted},
		{"addr_in_use", ErrAddrInUse},
		{"invalid", ErrInvalid},
		{"exists", ErrExists},
	}
}
