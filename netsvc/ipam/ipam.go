package ipam

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
)

// DefaultPrefix is where allocations are kept in the store.
const DefaultPrefix = "netsvc/ipam/"

// Options tune New. The zero value is usable.
type Options struct {
	// Prefix is the store key prefix; empty means DefaultPrefix.
	Prefix string
	// Now returns the time recorded in new allocations; nil means time.Now.
	Now func() time.Time
}

// IPAM allocates addresses from ranges kept in a store. It is safe for
// concurrent use, and several IPAMs (in several processes) may share one
// store and prefix.
type IPAM struct {
	st     store.Store
	prefix string
	now    func() time.Time
	mu     sync.Mutex
}

var _ netsvc.IPAM = (*IPAM)(nil)

// New returns an IPAM that keeps its ranges and allocations in st.
func New(st store.Store, opts *Options) *IPAM {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &IPAM{st: st, prefix: o.Prefix, now: o.Now}
}

func (p *IPAM) rangeKey(name string) string   { return p.prefix + "ranges/" + name }
func (p *IPAM) addrPrefix(name string) string { return p.prefix + "addr/" + name + "/" }
func (p *IPAM) addrKey(name string, a netip.Addr) string {
	b := a.As16()
	return p.addrPrefix(name) + hex.EncodeToString(b[:])
}
func (p *IPAM) ownerKey(name, owner string) string { return p.prefix + "owner/" + name + "/" + owner }

func checkOwner(owner string) error {
	if owner == "" || strings.ContainsRune(owner, 0) {
		return fmt.Errorf("ipam: owner %q must be non-empty (e.g. \"node/etcd-2\"): %w", owner, netsvc.ErrInvalid)
	}
	return nil
}

func checkName(what, name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("ipam: %s %q must be non-empty and contain no '/': %w", what, name, netsvc.ErrInvalid)
	}
	return nil
}

// normalize validates r and fills in its defaults.
func normalize(r netsvc.Range) (netsvc.Range, error) {
	if err := checkName("range name", r.Name); err != nil {
		return r, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("ipam: range %q: %s: %w", r.Name, fmt.Sprintf(format, args...), netsvc.ErrInvalid)
	}
	if !r.Prefix.IsValid() {
		return r, bad("no valid prefix (want e.g. 10.78.0.0/24 or fd00:78::/64)")
	}
	if r.Prefix.Addr().Zone() != "" {
		return r, bad("prefix %s has a zone", r.Prefix)
	}
	r.Prefix = netip.PrefixFrom(r.Prefix.Addr().Unmap(), r.Prefix.Bits()-unmapBits(r.Prefix.Addr())).Masked()
	net, last := r.Prefix.Addr(), lastAddr(r.Prefix)
	if !r.First.IsValid() {
		r.First = net
		if hostBits(r.Prefix) > 1 {
			r.First = net.Next()
		}
	}
	if !r.Last.IsValid() {
		r.Last = last
		if r.Prefix.Addr().Is4() && hostBits(r.Prefix) > 1 {
			r.Last = last.Prev() // broadcast
		}
	}
	r.First, r.Last = r.First.Unmap(), r.Last.Unmap()
	if !r.Prefix.Contains(r.First) || !r.Prefix.Contains(r.Last) {
		return r, bad("first %s and last %s must lie in %s", r.First, r.Last, r.Prefix)
	}
	if r.Last.Less(r.First) {
		return r, bad("last %s is before first %s", r.Last, r.First)
	}
	res := make([]netip.Addr, 0, len(r.Reserved))
	for _, a := range r.Reserved {
		a = a.Unmap()
		if !r.Prefix.Contains(a) {
			return r, bad("reserved address %s is outside %s", a, r.Prefix)
		}
		res = append(res, a)
	}
	slices.SortFunc(res, func(a, b netip.Addr) int { return a.Compare(b) })
	r.Reserved = slices.Compact(res)
	if len(r.Reserved) == 0 {
		r.Reserved = nil
	}
	return r, nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// size is the number of addresses from first to last, inclusive.
func size(r netsvc.Range) *big.Int {
	f, l := new(big.Int).SetBytes(r.First.AsSlice()), new(big.Int).SetBytes(r.Last.AsSlice())
	return l.Sub(l, f).Add(l, big.NewInt(1))
}

// AddRange implements netsvc.IPAM.
func (p *IPAM) AddRange(ctx context.Context, r netsvc.Range) error {
	r, err := normalize(r)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	_, err = p.st.CompareAndSwap(ctx, p.rangeKey(r.Name), 0, b)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("ipam: adding range %q: %w", r.Name, err)
	}
	old, err := p.getRange(ctx, r.Name)
	if err != nil {
		return err
	}
	ob, _ := json.Marshal(old)
	if string(ob) != string(b) {
		return fmt.Errorf("ipam: range %q already exists as %s %s-%s: pick another name or keep its definition: %w", r.Name, old.Prefix, old.First, old.Last, netsvc.ErrExists)
	}
	return nil
}

// Range returns the range called name as stored, defaults filled in.
func (p *IPAM) Range(ctx context.Context, name string) (netsvc.Range, error) {
	return p.getRange(ctx, name)
}

func (p *IPAM) getRange(ctx context.Context, name string) (netsvc.Range, error) {
	if err := checkName("range name", name); err != nil {
		return netsvc.Range{}, err
	}
	e, err := p.st.Get(ctx, p.rangeKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return netsvc.Range{}, fmt.Errorf("ipam: range %q: %w (add it with AddRange first)", name, netsvc.ErrNotFound)
	}
	if err != nil {
		return netsvc.Range{}, fmt.Errorf("ipam: reading range %q: %w", name, err)
	}
	var r netsvc.Range
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return netsvc.Range{}, fmt.Errorf("ipam: range record %s is corrupt: %w", e.Key, err)
	}
	return r, nil
}

// held returns the allocation owner holds in the range, if any.
func (p *IPAM) held(ctx context.Context, rng, owner string) (netsvc.Allocation, bool, error) {
	oe, err := p.st.Get(ctx, p.ownerKey(rng, owner))
	if errors.Is(err, store.ErrNotFound) {
		return netsvc.Allocation{}, false, nil
	}
	if err != nil {
		return netsvc.Allocation{}, false, fmt.Errorf("ipam: reading owner %q in range %q: %w", owner, rng, err)
	}
	ae, err := p.st.Get(ctx, string(oe.Value))
	if err != nil {
		// The two keys are written and deleted together, so this is a
		// concurrent release; the caller retries.
		return netsvc.Allocation{}, false, fmt.Errorf("ipam: owner %q in range %q points at %s: %w", owner, rng, oe.Value, err)
	}
	var a netsvc.Allocation
	if err := json.Unmarshal(ae.Value, &a); err != nil {
		return netsvc.Allocation{}, false, fmt.Errorf("ipam: allocation %s is corrupt: %w", ae.Key, err)
	}
	return a, true, nil
}

// Allocate implements netsvc.IPAM.
func (p *IPAM) Allocate(ctx context.Context, req netsvc.Request) (netsvc.Allocation, error) {
	if err := checkOwner(req.Owner); err != nil {
		return netsvc.Allocation{}, err
	}
	r, err := p.getRange(ctx, req.Range)
	if err != nil {
		return netsvc.Allocation{}, err
	}
	want := req.Addr.Unmap()
	if want.IsValid() && (want.Less(r.First) || r.Last.Less(want) || want.BitLen() != r.First.BitLen()) {
		return netsvc.Allocation{}, fmt.Errorf("ipam: %s asked for %s, which is outside range %q (%s-%s): %w", req.Owner, want, r.Name, r.First, r.Last, netsvc.ErrInvalid)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	var lastErr error
	for attempt := 0; attempt < 1000; attempt++ {
		if err := ctx.Err(); err != nil {
			return netsvc.Allocation{}, fmt.Errorf("ipam: allocating for %s in %q: %w", req.Owner, r.Name, err)
		}
		a, ok, err := p.held(ctx, r.Name, req.Owner)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				lastErr = err
				continue
			}
			return netsvc.Allocation{}, err
		}
		if ok {
			if want.IsValid() && a.Addr != want {
				return netsvc.Allocation{}, fmt.Errorf("ipam: %s asked for %s in range %q but already holds %s: release it first: %w", req.Owner, want, r.Name, a.Addr, netsvc.ErrAddrInUse)
			}
			return a, nil
		}
		addr := want
		if !addr.IsValid() {
			if addr, err = p.nextFree(ctx, r); err != nil {
				return netsvc.Allocation{}, err
			}
		}
		a = netsvc.Allocation{Range: r.Name, Addr: addr, Owner: req.Owner, Note: req.Note, Created: p.now().UTC()}
		b, _ := json.Marshal(a)
		ak := p.addrKey(r.Name, addr)
		_, err = p.st.Txn(ctx,
			store.PutOp(ak, b).IfRevision(0),
			store.PutOp(p.ownerKey(r.Name, req.Owner), []byte(ak)).IfRevision(0))
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return netsvc.Allocation{}, fmt.Errorf("ipam: allocating %s for %s in %q: %w", addr, req.Owner, r.Name, err)
		}
		lastErr = err
		if want.IsValid() {
			// Taken by someone else, unless it is our owner's own
			// concurrent allocation (the next round returns that).
			if e, gerr := p.st.Get(ctx, ak); gerr == nil {
				var other netsvc.Allocation
				if json.Unmarshal(e.Value, &other) == nil && other.Owner != req.Owner {
					return netsvc.Allocation{}, fmt.Errorf("ipam: %s in range %q is held by %s: %w", want, r.Name, other.Owner, netsvc.ErrAddrInUse)
				}
			}
		}
	}
	return netsvc.Allocation{}, fmt.Errorf("ipam: allocating for %s in %q kept conflicting with other writers: %w", req.Owner, r.Name, lastErr)
}

// nextFree returns the lowest address of r that is neither allocated nor
// reserved.
func (p *IPAM) nextFree(ctx context.Context, r netsvc.Range) (netip.Addr, error) {
	ents, _, err := p.st.List(ctx, p.addrPrefix(r.Name))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ipam: listing range %q: %w", r.Name, err)
	}
	taken := make(map[string]bool, len(ents)+len(r.Reserved))
	for _, e := range ents {
		taken[e.Key] = true
	}
	for _, a := range r.Reserved {
		taken[p.addrKey(r.Name, a)] = true
	}
	// At most len(taken)+1 candidates are looked at.
	for a := r.First; a.IsValid() && !r.Last.Less(a); a = a.Next() {
		if !taken[p.addrKey(r.Name, a)] {
			return a, nil
		}
	}
	return netip.Addr{}, &netsvc.ExhaustedError{Range: r.Name, Size: size(r).String()}
}

// Release implements netsvc.IPAM.
func (p *IPAM) Release(ctx context.Context, rangeName, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if _, err := p.getRange(ctx, rangeName); err != nil {
		return err
	}
	ok := p.ownerKey(rangeName, owner)
	for attempt := 0; attempt < 100; attempt++ {
		oe, err := p.st.Get(ctx, ok)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ipam: releasing %s in %q: %w", owner, rangeName, err)
		}
		ops := []store.Op{store.DeleteOp(ok).IfRevision(oe.Revision)}
		if ae, err := p.st.Get(ctx, string(oe.Value)); err == nil {
			ops = append(ops, store.DeleteOp(ae.Key).IfRevision(ae.Revision))
		}
		_, err = p.st.Txn(ctx, ops...)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("ipam: releasing %s in %q: %w", owner, rangeName, err)
		}
	}
	return fmt.Errorf("ipam: releasing %s in %q kept conflicting with other writers: %w", owner, rangeName, store.ErrConflict)
}

// Allocations implements netsvc.IPAM.
func (p *IPAM) Allocations(ctx context.Context, rangeName string) ([]netsvc.Allocation, error) {
	if _, err := p.getRange(ctx, rangeName); err != nil {
		return nil, err
	}
	ents, _, err := p.st.List(ctx, p.addrPrefix(rangeName))
	if err != nil {
		return nil, fmt.Errorf("ipam: listing range %q: %w", rangeName, err)
	}
	out := make([]netsvc.Allocation, 0, len(ents))
	for _, e := range ents {
		var a netsvc.Allocation
		if err := json.Unmarshal(e.Value, &a); err != nil {
			return nil, fmt.Errorf("ipam: allocation %s is corrupt: %w", e.Key, err)
		}
		out = append(out, a)
	}
	return out, nil
}
