package spec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/masonops/mason/spec"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must never panic, and
// a spec that loads without errors must build a deployment. The seed
// corpus (every spec in testdata) runs in every go test.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.hcl")
	for _, path := range files {
		if src, err := os.ReadFile(path); err == nil {
			f.Add(src)
		}
	}
	f.Add([]byte(`deployment = "x"` + "\n" + `role "member" { on = [pool.p] inputs = { Peers = role.member.outputs[*] } }`))
	f.Add([]byte(`pool "p" { count = 1e12 }`))
	f.Add([]byte(`attrs = { (var.x) = role.a.output["b"] }`))
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, src []byte) {
		s, diags := spec.Load(reg, []spec.File{{Name: "fuzz.hcl", Src: src}},
			spec.Options{Deployment: "fuzz", Vars: map[string]string{"members": "3"}})
		_ = spec.Format(diags)
		if diags.HasErrors() {
			return
		}
		if _, err := s.Deployment(nil); err != nil {
			_ = s.Diagnostics(err)
		}
		_ = s.NodeSpecs()
	})
}
