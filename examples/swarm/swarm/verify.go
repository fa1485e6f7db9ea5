package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/masonops/mason/role"
)

// Verify proves the deployment serves: HTTP requests through the load
// balancer reach the demo service on every backend, and the DNS daemon
// answers every record of the zone. A service-scope role; [Up] checks the
// load balancer again after every apply, converged or not.
type Verify struct{}

// VerifyIn is the load balancer and the zone.
type VerifyIn struct {
	LB  role.One[LBOut]
	DNS role.One[DNSOut]
}

// VerifyOut is what was seen.
type VerifyOut struct {
	URL string
	// Answered lists the nodes that answered through the load balancer.
	Answered []string
	Requests int
}

// Meta implements role.Role.
func (Verify) Meta() role.Meta {
	return role.Meta{Name: "swarm-verify", Version: "1", Scope: role.ScopeService,
		Doc: "sends HTTP requests through the load balancer until every node answered, and asks DNS for every record"}
}

// Run implements role.Role.
func (Verify) Run(ctx context.Context, rc *role.Context, in VerifyIn) (VerifyOut, error) {
	out := VerifyOut{URL: in.LB.Value.URL}
	var err error
	if out.Answered, out.Requests, err = ReachAll(ctx, in.LB.Value.URL, in.LB.Value.Backends, 60*time.Second); err != nil {
		return out, err
	}
	for name, ip := range in.DNS.Value.Records {
		if err := poll(ctx, 10*time.Second, func() error {
			got, err := Resolve(ctx, in.DNS.Value.Server, name+"."+in.DNS.Value.Zone)
			if err == nil && !slices.Equal(got, []string{ip}) {
				err = fmt.Errorf("DNS at %s answers %s.%s with %v, not %s", in.DNS.Value.Server, name, in.DNS.Value.Zone, got, ip)
			}
			return err
		}); err != nil {
			return out, err
		}
	}
	rc.Log().Info("verified", "url", out.URL, "answered", strings.Join(out.Answered, ","), "requests", out.Requests, "records", len(in.DNS.Value.Records))
	return out, nil
}

// ReachAll sends requests to url (each on a new connection, so the load
// balancer spreads them) until every node in want has answered, or max
// passes. It returns the nodes seen, sorted, and the number of requests.
//
// Requests are paced (reachPace apart, longer after an error), so that
// max, not the speed of the machine, decides how long a backend has to
// come back: a load balancer takes a backend back into its rotation only
// after its next health check passes, and a burst of fast requests could
// otherwise end before that.
func ReachAll(ctx context.Context, url string, want []string, max time.Duration) ([]string, int, error) {
	seen := map[string]bool{}
	n := 0
	limit := int(max/reachPace) + 1
	var last error
	failed := false
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && n < limit {
		if n > 0 {
			pause := reachPace
			if failed {
				pause = 100 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				last = ctx.Err()
			case <-time.After(pause):
			}
			if ctx.Err() != nil {
				break
			}
		}
		n++
		got, err := Get(ctx, url)
		if failed = err != nil; failed {
			last = err
			continue
		}
		seen[got] = true
		done := true
		for _, w := range want {
			done = done && seen[w]
		}
		if done {
			break
		}
	}
	var answered []string
	for s := range seen {
		answered = append(answered, s)
	}
	slices.Sort(answered)
	for _, w := range want {
		if !seen[w] {
			return answered, n, fmt.Errorf("after %d requests through %s, %s never answered (seen: %v; last error: %v)", n, url, w, answered, last)
		}
	}
	return answered, n, nil
}

// reachPace is the gap between two requests of [ReachAll].
const reachPace = 10 * time.Millisecond

// Resolve asks the DNS server at server (host:port) for the A records of
// name.
func Resolve(ctx context.Context, server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("DNS at %s: %s: %w", server, name, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("DNS at %s: %s: %s", server, name, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, a := range r.Answer {
		if rr, ok := a.(*dns.A); ok {
			out = append(out, rr.A.String())
		}
	}
	slices.Sort(out)
	return out, nil
}
