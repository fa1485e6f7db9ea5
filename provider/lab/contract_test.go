package lab

import (
	"fmt"
	"testing"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/providertest"
)

func TestContract(t *testing.T) {
	l := openLab(t, Options{})
	providertest.Run(t, providertest.Harness{
		Provider: l.Provider(),
		Spec: func(i int) provider.NodeSpec {
			return provider.NodeSpec{ID: fmt.Sprintf("c%d", i), Name: fmt.Sprintf("node-%d", i), Labels: map[string]string{"pool": "contract"}}
		},
	})
}
