package mem_test

import (
	"testing"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
	"github.com/masonops/mason/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return mem.New() })
}
