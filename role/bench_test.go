package role_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/masonops/mason/role"
)

// The input shapes of graph's BenchmarkExecutorOverhead: what the
// executor binds and digests for every node-role.
type (
	benchA   struct{ N int }
	benchC   struct{ N int }
	benchAgg struct{ N int }
	benchD   struct{ N int }
)

type (
	benchSameIn struct{ A role.Same[benchA] }
	benchTwoIn  struct {
		Agg role.One[benchAgg]
		C   role.Same[benchC]
	}
	benchAllIn struct{ All role.All[benchA] }
)

func benchDef[In any](name string) *role.Def {
	return role.Of(role.Func(role.Meta{Name: name}, func(ctx context.Context, rc *role.Context, in In) (benchD, error) {
		return benchD{}, nil
	}))
}

func benchEnv(n int) map[string]role.Env {
	peers := make([]role.Output, n)
	for i := range peers {
		peers[i] = role.Output{Role: "a", Node: fmt.Sprintf("n%04d", i), Value: benchA{N: 1}}
	}
	return map[string]role.Env{
		"same": {Node: "n0001", Outputs: []role.Output{{Role: "a", Node: "n0001", Value: benchA{N: 1}}}},
		"two": {Node: "n0001", Outputs: []role.Output{
			{Role: "agg", Node: "n0000", Value: benchAgg{N: 2000}},
			{Role: "c", Node: "n0001", Value: benchC{N: 1}},
		}},
		"all": {Node: "n0000", Outputs: peers},
	}
}

// BenchmarkBindInput binds the executor benchmark's input shapes.
func BenchmarkBindInput(b *testing.B) {
	envs := benchEnv(2000)
	for _, c := range []struct {
		name string
		def  *role.Def
	}{
		{"same", benchDef[benchSameIn]("b")},
		{"two", benchDef[benchTwoIn]("d")},
	} {
		b.Run(c.name, func(b *testing.B) {
			env := envs[c.name]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.def.BindInput(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDigestInputsInto digests bound inputs of those shapes, as the
// executor does for every run.
func BenchmarkDigestInputsInto(b *testing.B) {
	envs := benchEnv(2000)
	for _, c := range []struct {
		name string
		def  *role.Def
	}{
		{"same", benchDef[benchSameIn]("b")},
		{"two", benchDef[benchTwoIn]("d")},
		{"all", benchDef[benchAllIn]("agg")},
	} {
		b.Run(c.name, func(b *testing.B) {
			in, err := c.def.BindInput(envs[c.name])
			if err != nil {
				b.Fatal(err)
			}
			per := make([]string, len(c.def.DigestedInputs()))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.def.DigestInputsInto(in, nil, per); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewContext builds the Context of one attempt, as the graph
// hands it to a role's Run (where it escapes): allocated by NewContext,
// or in storage the caller keeps per run, by InitContext.
func BenchmarkNewContext(b *testing.B) {
	svcs := role.NewServices()
	opts := role.ContextOptions{Deployment: "d", Role: "b", Services: svcs, Attempt: 1}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchKeep = role.NewContext(opts)
		}
	})
	b.Run("init", func(b *testing.B) {
		runs := make([]role.Context, 64)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			benchKeep = role.InitContext(&runs[i%len(runs)], opts)
			i++
		}
	})
}

var benchKeep *role.Context
