package lb

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/masonops/mason/netsvc"
)

// startChecks runs b's health checks until it is removed or the frontend
// closes; callers hold f.mu.
func (f *frontend) startChecks(b *backend) {
	ctx, cancel := context.WithCancel(f.ctx)
	b.mu.Lock()
	if b.stop != nil {
		b.stop()
	}
	b.stop = cancel
	b.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			hc := f.config().Health
			select {
			case <-ctx.Done():
				return
			case <-time.After(hc.Interval):
			}
			err := check(ctx, b.Addr, hc)
			if ctx.Err() != nil {
				return
			}
			f.result(b, err, hc)
		}
	}()
}

// result applies one check (or dial) outcome to b's health.
func (f *frontend) result(b *backend, err error, hc netsvc.HealthCheck) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.bad = 0
		b.ok++
		if !b.healthy.Load() && b.ok >= hc.Rise {
			b.healthy.Store(true)
			b.lastErr = ""
			f.log.Info("lb: backend up", "backend", b.Addr)
		}
		return
	}
	b.ok = 0
	b.bad++
	b.lastErr = err.Error()
	if b.healthy.Load() && b.bad >= hc.Fall {
		b.healthy.Store(false)
		f.log.Warn("lb: backend down", "backend", b.Addr, "err", err)
	}
}

// check runs one health check of addr.
func check(ctx context.Context, addr string, hc netsvc.HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	if hc.HTTPPath == "" {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.HTTPPath, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "health check answered HTTP " + http.StatusText(e.code) }
