package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
)

// BenchmarkTxn measures fsync'd transactions of 1 and 64 puts and reports
// the cost per record, which is what grouping writes saves.
func BenchmarkTxn(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("puts=%d", n), func(b *testing.B) {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			ops := make([]store.Op, n)
			val := make([]byte, 200)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range ops {
					ops[j] = store.PutOp(fmt.Sprintf("journal/%d/%d", i, j), val)
				}
				if _, err := s.Txn(ctx, ops...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
