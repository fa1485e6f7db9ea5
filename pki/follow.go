package pki

import (
	"context"
	"fmt"
)

// Follow keeps the authority in step with the store until ctx ends: root
// rotations and revocations made by other controllers reach Verify, the
// TLS configs and Issue moments after they are written. Run it in a
// goroutine you wait for; it returns nil when ctx ends and an error when
// the store fails.
func (a *Authority) Follow(ctx context.Context) error {
	ch, err := a.m.st.Watch(ctx, a.key(""), 0)
	if err != nil {
		return fmt.Errorf("pki: following authority %q: %w", a.service, err)
	}
	// Anything written before the watch started is picked up here.
	if err := a.Refresh(ctx); err != nil {
		return err
	}
	authKey, revKey := a.key("authority"), a.key("revocations")
	for ev := range ch {
		if ev.Key != authKey && ev.Key != revKey {
			continue
		}
		if err := a.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("pki: following authority %q: the store closed its watch", a.service)
}
