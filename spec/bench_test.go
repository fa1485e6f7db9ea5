package spec_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/masonops/mason/spec"
)

// BenchmarkLoad loads the demo spec with pools of growing size and reports
// the cost per node, to show loading grows linearly with the nodes:
//
//	go test ./spec -run '^$' -bench Load
func BenchmarkLoad(b *testing.B) {
	src, err := os.ReadFile("testdata/good.hcl")
	if err != nil {
		b.Fatal(err)
	}
	reg := testRegistry()
	for _, n := range []int{3, 301} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			opts := spec.Options{Vars: map[string]string{"members": fmt.Sprint(n)}}
			for i := 0; i < b.N; i++ {
				s, diags := spec.Load(reg, []spec.File{{Name: "good.hcl", Src: src}}, opts)
				if diags.HasErrors() {
					b.Fatal(spec.Format(diags))
				}
				if _, err := s.Deployment(nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/node")
		})
	}
}
