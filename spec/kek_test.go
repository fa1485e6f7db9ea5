package spec_test

import (
	"bytes"

	"github.com/masonops/mason/seal"
)

// specKEK is the key-encryption key of the tests' deployments, whose roles
// pass secrets (graph.Deployment.UseKEK): one key, so that plans made of
// the same deployment in one test open what an earlier apply sealed.
var specKEK = func() *seal.KEK {
	k, err := seal.New(bytes.Repeat([]byte{0x5e}, 32))
	if err != nil {
		panic(err)
	}
	return k
}()
