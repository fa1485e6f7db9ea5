package ssh

import (
	"context"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/systemd"
)

// The ssh transport offers [provider.Units] through the machine's systemd
// (package systemd): unit files under /etc/systemd/system, systemctl,
// journald. The login user must be root or have passwordless sudo. A
// machine without systemd gets a clear error from the first operation.
var _ provider.Units = (*Transport)(nil)

func (t *Transport) units() *systemd.Units { return systemd.New(t) }

// InstallUnit implements [provider.Units] with systemd.
func (t *Transport) InstallUnit(ctx context.Context, u provider.Unit) (provider.UnitChange, error) {
	return t.units().InstallUnit(ctx, u)
}

// StartUnit implements [provider.Units] with systemd.
func (t *Transport) StartUnit(ctx context.Context, name string) error {
	return t.units().StartUnit(ctx, name)
}

// StopUnit implements [provider.Units] with systemd.
func (t *Transport) StopUnit(ctx context.Context, name string) error {
	return t.units().StopUnit(ctx, name)
}

// RestartUnit implements [provider.Units] with systemd.
func (t *Transport) RestartUnit(ctx context.Context, name string) error {
	return t.units().RestartUnit(ctx, name)
}

// UnitStatus implements [provider.Units] with systemd.
func (t *Transport) UnitStatus(ctx context.Context, name string) (provider.UnitStatus, error) {
	return t.units().UnitStatus(ctx, name)
}

// UnitLogs implements [provider.Units] with systemd.
func (t *Transport) UnitLogs(ctx context.Context, name string, lines int) (string, error) {
	return t.units().UnitLogs(ctx, name, lines)
}

// RemoveUnit implements [provider.Units] with systemd.
func (t *Transport) RemoveUnit(ctx context.Context, name string) error {
	return t.units().RemoveUnit(ctx, name)
}
