package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/ipam"
	"github.com/masonops/mason/store/mem"
)

func Example() {
	st := mem.New()
	defer st.Close()
	var p netsvc.IPAM = ipam.New(st, nil)
	ctx := context.Background()
	_ = p.AddRange(ctx, netsvc.Range{
		Name:     "lab",
		Prefix:   netip.MustParsePrefix("10.78.0.0/29"),
		Reserved: []netip.Addr{netip.MustParseAddr("10.78.0.1")}, // the gateway
	})
	for _, owner := range []string{"node/etcd-1", "node/etcd-2", "node/etcd-1"} {
		a, _ := p.Allocate(ctx, netsvc.Request{Range: "lab", Owner: owner})
		fmt.Println(owner, a.Addr)
	}
	for i := range 5 {
		if _, err := p.Allocate(ctx, netsvc.Request{Range: "lab", Owner: fmt.Sprint("extra-", i)}); errors.Is(err, netsvc.ErrExhausted) {
			fmt.Println("extra", i, "gets nothing:", err)
		}
	}
	// Output:
	// node/etcd-1 10.78.0.2
	// node/etcd-2 10.78.0.3
	// node/etcd-1 10.78.0.2
	// extra 3 gets nothing: netsvc: range "lab" is exhausted (all 6 addresses allocated or reserved): release addresses or add a range
	// extra 4 gets nothing: netsvc: range "lab" is exhausted (all 6 addresses allocated or reserved): release addresses or add a range
}
