package vsphere

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/masonops/mason/breaker"
	"github.com/masonops/mason/provider"
)

func injections(v *vcsim) int64 {
	n, _ := v.model.Service.GetFaultStats()["total_injections"].(int64)
	return n
}

func rule(method string, ft simulator.FaultType, maxCount, delayMS int) *simulator.FaultInjectionRule {
	return &simulator.FaultInjectionRule{
		MethodName: method, ObjectType: "*", ObjectName: "*",
		Probability: 1, FaultType: ft, MaxCount: maxCount, Delay: delayMS, Enabled: true,
		Message: "injected by mason test",
	}
}

// Server-side faults are retried with backoff; a fault about the request
// is not retried, and the next Create resumes the half-made node.
func TestFaultsRetriedOrResumed(t *testing.T) {
	v := newSim(t, nil)
	logs := new(logBuf)
	d := open(t, v.config(t, plan(2), logs))
	p := d.Provider()
	ctx := ctxT(t)

	// Two SystemErrors on clone, one slow timeout fault on power-on:
	// Create rides them out.
	v.model.Service.AddFaultRule(rule("CloneVM_Task", simulator.FaultTypeGeneric, 2, 0))
	v.model.Service.AddFaultRule(rule("PowerOnVM_Task", simulator.FaultTypeTimeout, 1, 100))
	n, err := p.Create(ctx, spec(0))
	require.NoError(t, err)
	require.Equal(t, int64(3), injections(v))
	require.Equal(t, 3, strings.Count(logs.String(), "retrying"), logs.String())
	require.Equal(t, breaker.Closed, d.Breaker().State(), "successes between the faults keep it closed")
	require.Equal(t, plan(2)["n0"].Addr(), n.InterfaceAddr)
	v.model.Service.ClearFaultRules()

	// A fault about the request (not vCenter's health) fails Create at
	// once, after the clone; the retried Create finishes that VM.
	v.model.Service.AddFaultRule(rule("PowerOnVM_Task", simulator.FaultTypeInvalidArgument, 0, 0))
	_, err = p.Create(ctx, spec(1))
	require.Error(t, err)
	require.True(t, isFault(err, &types.InvalidArgument{}), "the fault is kept: %v", err)
	require.Equal(t, int64(1), injections(v), "not retried")
	require.Equal(t, breaker.Closed, d.Breaker().State(), "vCenter answered; its health is fine")
	half, err := p.Get(ctx, "n1")
	require.NoError(t, err)
	require.Equal(t, provider.StatePending, half.State, "cloned and customized, never powered on")
	v.model.Service.ClearFaultRules()

	n1, err := p.Create(ctx, spec(1))
	require.NoError(t, err)
	require.Equal(t, vmInfo(t, half).Ref, vmInfo(t, n1).Ref, "the retried create finished the same VM")
	require.Equal(t, provider.StateRunning, n1.State)
	require.Len(t, v.folderVMs(t, d.Folder()), 2)
}

// Consecutive failures open the breaker; while it is open no call reaches
// vCenter; after OpenFor a probe goes through and closes it again.
func TestBreakerStopsHammering(t *testing.T) {
	v := newSim(t, nil)
	cfg := v.config(t, plan(1), nil)
	var transitions []string
	cfg.Breaker.OnStateChange = func(_ string, from, to breaker.State) {
		transitions = append(transitions, from.String()+"→"+to.String())
	}
	d := open(t, cfg)
	p := d.Provider()
	ctx := ctxT(t)

	v.model.Service.AddFaultRule(rule("*", simulator.FaultTypeGeneric, 0, 0)) // vCenter is broken
	_, err := p.Create(ctx, spec(0))
	require.ErrorIs(t, err, breaker.ErrOpen)
	require.Contains(t, err.Error(), "vCenter calls are suspended")
	require.Equal(t, int64(3), injections(v), "exactly Failures calls reached vCenter")

	for range 5 {
		_, err = p.Get(ctx, "n0")
		require.ErrorIs(t, err, breaker.ErrOpen)
		_, err = p.List(ctx)
		require.ErrorIs(t, err, breaker.ErrOpen)
	}
	require.Equal(t, int64(3), injections(v), "an open breaker answers for vCenter")

	v.model.Service.ClearFaultRules() // vCenter recovers
	require.Eventually(t, func() bool { return d.Breaker().State() == breaker.HalfOpen }, 10*time.Second, 20*time.Millisecond)
	n, err := p.Create(ctx, spec(0))
	require.NoError(t, err)
	require.Equal(t, provider.StateRunning, n.State)
	require.Equal(t, breaker.Closed, d.Breaker().State())
	require.Equal(t, []string{"closed→open", "open→half-open", "half-open→closed"}, transitions)
}

// A caller that gives up on a slow vCenter does not count against it.
func TestSlowVCenterAndImpatientCaller(t *testing.T) {
	v := newSim(t, map[string]int{"FindByUuid": 300}) // every search takes 300ms
	d := open(t, v.config(t, plan(1), nil))
	for range 4 { // more than Breaker.Failures
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := d.Provider().Get(ctx, "n0")
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	require.Equal(t, breaker.Closed, d.Breaker().State())
	_, err := d.Provider().Get(ctxT(t), "n0")
	require.ErrorIs(t, err, provider.ErrNotFound, "a patient caller gets the answer")
}

// A node whose guest never reports an address fails Create with
// ErrNoAddress at the deadline; once the address shows, Create resumes.
func TestAddressDeadline(t *testing.T) {
	v := newSim(t, nil)
	logs := new(logBuf)
	cfg := v.config(t, nil, logs) // DHCP, and no lease will come
	cfg.IPTimeout = 300 * time.Millisecond
	d := open(t, cfg)
	p := d.Provider()
	ctx := ctxT(t)

	_, err := p.Create(ctx, spec(0))
	require.ErrorIs(t, err, ErrNoAddress)
	require.Contains(t, err.Error(), "open-vm-tools")
	require.Equal(t, breaker.Closed, d.Breaker().State(), "a slow guest is not a failing vCenter")
	n, err := p.Get(ctx, "n0")
	require.NoError(t, err)
	require.Equal(t, provider.StateRunning, n.State)
	require.False(t, n.InterfaceAddr.IsValid())

	require.NoError(t, v.setGuestIP(ctx, vmInfo(t, n).Ref, "10.99.0.7"))
	n, err = p.Create(ctx, spec(0))
	require.NoError(t, err)
	require.Equal(t, "10.99.0.7", n.InterfaceAddr.String())
	require.Len(t, v.folderVMs(t, d.Folder()), 1)
	require.Contains(t, logs.String(), "address reported")
}

// Bad credentials and untrusted certificates give clear errors, fast, and
// no error or log line carries a password.
func TestCredentialsAndTrust(t *testing.T) {
	v := newSim(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	const wrong = "wrong-Pa55word-never-print"

	tests := []struct {
		name   string
		mod    func(*Config)
		is     error
		says   string
		opened bool
	}{
		{"wrong password", func(c *Config) { c.Password = wrong }, ErrLogin, "MASON_VSPHERE_PASSWORD", false},
		{"wrong user", func(c *Config) { c.Username = "intruder" }, ErrLogin, `as "intruder"`, false},
		{"password in URL", func(c *Config) {
			c.URL = fmt.Sprintf("https://%s:%s@%s/sdk", simUser, wrong, v.server.URL.Host)
			c.Password = ""
		}, ErrLogin, "refused", false},
		{"no password", func(c *Config) { c.Password = "" }, nil, "no credentials", false},
		{"untrusted certificate", func(c *Config) { c.CAFile = "" }, nil, "Config.Thumbprint", false},
		{"wrong thumbprint", func(c *Config) { c.CAFile = ""; c.Thumbprint = strings.Repeat("AB:", 19) + "AB" }, nil, "thumbprint does not match", false},
		{"pinned thumbprint", func(c *Config) { c.CAFile = ""; c.Thumbprint = v.thumb }, nil, "", true},
		{"vCenter unreachable", func(c *Config) { c.URL = closed }, breaker.ErrOpen, "suspended", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := new(logBuf)
			cfg := v.config(t, nil, logs)
			tc.mod(&cfg)
			d, err := Open(ctxT(t), cfg)
			if tc.opened {
				require.NoError(t, err)
				require.NoError(t, d.Close())
			} else {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.says)
				if tc.is != nil {
					require.ErrorIs(t, err, tc.is)
				}
				for _, secret := range []string{simPass, wrong} {
					require.NotContains(t, err.Error(), secret)
					require.NotContains(t, fmt.Sprintf("%+v %#v", err, err), secret)
				}
			}
			for _, secret := range []string{simPass, wrong} {
				require.NotContains(t, logs.String(), secret)
				require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.Password), secret)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %+v %#v", s, s, s, s, s), errors.New(s.String()).Error()} {
		require.NotContains(t, out, "hunter2")
	}
	b, err := s.MarshalText()
	require.NoError(t, err)
	require.Equal(t, "[redacted]", string(b))
	require.Equal(t, "hunter2", s.Reveal())
	require.Equal(t, "", Secret("").String())
}

// When vCenter drops the session (idle timeout, restart), the driver logs
// in again and the call goes on.
func TestSessionExpiry(t *testing.T) {
	v := newSim(t, nil)
	logs := new(logBuf)
	d := open(t, v.config(t, plan(1), logs))
	ctx := ctxT(t)
	us, err := d.sm.UserSession(ctx)
	require.NoError(t, err)
	require.NoError(t, v.client.SessionManager.TerminateSession(ctx, []string{us.Key}))

	n, err := d.Provider().Create(ctx, spec(0))
	require.NoError(t, err)
	require.Equal(t, provider.StateRunning, n.State)
	require.Contains(t, logs.String(), "logged in again")
	require.NotContains(t, logs.String(), simPass)
}
