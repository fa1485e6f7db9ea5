package pki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/masonops/mason/store"
)

// RotateRoot creates a new root (and intermediate) and makes it current.
// The previous root stays trusted for overlap, so certificates it issued
// keep working while their holders renew; Issue signs with the new root
// from now on and re-issues every stored certificate on its next call.
func (a *Authority) RotateRoot(ctx context.Context, overlap time.Duration) error {
	if overlap < 0 {
		return fmt.Errorf("pki: rotating %q: negative overlap %v", a.service, overlap)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		if err := a.refreshLocked(ctx); err != nil {
			return err
		}
		st := a.state.Load()
		now := a.m.now()
		cur := st.current()
		g, err := a.newGeneration(st.rec.Config, cur.rec.Gen+1, now)
		if err != nil {
			return err
		}
		rec := st.rec
		rec.Generations = nil
		for _, old := range st.rec.Generations {
			if old.Gen == cur.rec.Gen {
				old.TrustUntil = now.Add(overlap)
			}
			// Generations whose trust has ended are dropped for good.
			if !old.TrustUntil.IsZero() && !now.Before(old.TrustUntil) {
				continue
			}
			rec.Generations = append(rec.Generations, old)
		}
		rec.Generations = append(rec.Generations, g.rec)
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("pki: rotating %q: encoding record: %w", a.service, err)
		}
		rev, err := a.m.st.CompareAndSwap(ctx, a.key("authority"), st.authRev, b)
		if errors.Is(err, store.ErrConflict) {
			continue // someone else changed it; re-read and try again
		}
		if err != nil {
			return fmt.Errorf("pki: rotating %q: %w", a.service, err)
		}
		old := *st
		old.gens = append(slices.Clone(st.gens), g)
		nst, err := a.build(rec, rev, st.rv, st.revRev, &old)
		if err != nil {
			return err
		}
		a.state.Store(nst)
		a.m.log.Info("pki: root rotated", "service", a.service, "generation", g.rec.Gen,
			"root_serial", serialHex(g.root.SerialNumber), "previous_trusted_until", now.Add(overlap))
		return nil
	}
	return fmt.Errorf("pki: rotating %q: the authority kept changing under concurrent writers; retry", a.service)
}
