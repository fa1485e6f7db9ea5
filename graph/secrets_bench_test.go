package graph

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/seal"
	"github.com/masonops/mason/store/mem"
)

type (
	benchPlainOut  struct{ Token string }
	benchSecretOut struct{ Token attr.Secret[string] }
)

// secretsDeployment is n nodes × 2 roles: a token role and a role that
// takes its output; with secret, the token is an attr.Secret (its output
// is sealed, the consumer's input digest keyed) under a KEK.
func secretsDeployment(n int, secret bool, k *seal.KEK) *Deployment {
	dep := NewDeployment("secrets-bench")
	p := dep.Pool("all")
	for i := range n {
		p.Add(&provider.Node{Name: fmt.Sprintf("n%04d", i)})
	}
	if secret {
		tok := role.Func(role.Meta{Name: "tok"}, func(ctx context.Context, rc *role.Context, _ struct{}) (benchSecretOut, error) {
			return benchSecretOut{attr.Conceal("SWMTKN-1-" + rc.Node().Name)}, nil
		})
		use := role.Func(role.Meta{Name: "use"}, func(ctx context.Context, rc *role.Context, in struct{ T role.Same[benchSecretOut] }) (struct{}, error) {
			return struct{}{}, nil
		})
		dep.Bind(p, role.Of(tok), role.Of(use))
		dep.UseKEK(k)
		return dep
	}
	tok := role.Func(role.Meta{Name: "tok"}, func(ctx context.Context, rc *role.Context, _ struct{}) (benchPlainOut, error) {
		return benchPlainOut{"SWMTKN-1-" + rc.Node().Name}, nil
	})
	use := role.Func(role.Meta{Name: "use"}, func(ctx context.Context, rc *role.Context, in struct{ T role.Same[benchPlainOut] }) (struct{}, error) {
		return struct{}{}, nil
	})
	dep.Bind(p, role.Of(tok), role.Of(use))
	return dep
}

// runSecrets plans and applies, then plans again (the converged plan
// opens every sealed output), and returns the time per node-role.
func runSecrets(b *testing.B, secret bool, k *seal.KEK) float64 {
	st := mem.New()
	defer st.Close()
	start := time.Now()
	for range 2 {
		p, err := NewPlan(context.Background(), secretsDeployment(2000, secret, k), st)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(context.Background(), p, Options{Parallelism: 16}); err != nil {
			b.Fatal(err)
		}
	}
	return float64(time.Since(start).Nanoseconds()) / (2 * 4000)
}

// BenchmarkSecretsOverhead: what sealing costs — 2,000 nodes whose token
// role's output is sealed and whose consumer's digest is keyed, applied
// and then applied again converged, against the same deployment with a
// plain token, in the same run; metric secret/plain.
func BenchmarkSecretsOverhead(b *testing.B) {
	k, err := seal.Generate()
	if err != nil {
		b.Fatal(err)
	}
	var plainT, secretT float64
	for range b.N {
		plainT += runSecrets(b, false, nil)
		secretT += runSecrets(b, true, k)
	}
	b.ReportMetric(plainT/float64(b.N), "plain-ns/noderole")
	b.ReportMetric(secretT/float64(b.N), "secret-ns/noderole")
	b.ReportMetric(secretT/plainT, "secret/plain")
}
