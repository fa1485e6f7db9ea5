package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The set finds exactly the keys an earlier op of the transaction wrote,
// over transactions of every size, reusing one table as a Portable does.
func TestKeySetFindsDuplicates(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s keySet
	for round := range 300 {
		n := 1 + r.IntN(2000)
		if round%3 == 0 {
			n = 1 + r.IntN(20)
		}
		ops := make([]Op, n)
		for i := range ops {
			// Few distinct keys in some rounds, all distinct in others.
			k := i
			if round%2 == 0 {
				k = r.IntN(2 * n)
			}
			ops[i] = PutOp(fmt.Sprintf("mason/graph/d/nr/a@n%05d", k), nil)
		}
		s.reset(n)
		seen := map[string]bool{}
		for i := range ops {
			want := seen[ops[i].Key]
			seen[ops[i].Key] = true
			if got := s.add(ops, i); got != want {
				t.Fatalf("round %d op %d (%s): duplicate %v, want %v", round, i, ops[i].Key, got, want)
			}
		}
		s.clear()
	}
}
