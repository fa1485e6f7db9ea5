package netsvc_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/netsvc/ipam"
	"github.com/masonops/mason/store/mem"
)

func ExampleAssignName() {
	ctx := context.Background()
	st := mem.New()
	defer st.Close()
	dnsSrv, _ := authdns.New(st, nil)
	defer dnsSrv.Close()
	prefix := netip.MustParsePrefix("10.78.0.0/24")
	_ = dnsSrv.AddZone(ctx, authdns.Zone{Name: "lab.example."})
	_ = dnsSrv.AddZone(ctx, authdns.Zone{Name: netsvc.ReverseZone(prefix)})
	addrs := ipam.New(st, nil)
	_ = addrs.AddRange(ctx, netsvc.Range{Name: "lab", Prefix: prefix})

	// What a role does once its node exists; both arguments are contracts,
	// so the same call works against the daemon's client.
	a, err := netsvc.AssignName(ctx, addrs, dnsSrv, "lab", "node/etcd-1", "lab.example.", "etcd1", netsvc.ReverseZone(prefix))
	if err != nil {
		panic(err)
	}
	fmt.Println(a.Addr)
	fwd, _ := dnsSrv.Records(ctx, "lab.example.")
	rev, _ := dnsSrv.Records(ctx, netsvc.ReverseZone(prefix))
	fmt.Println(fwd[0].Name, fwd[0].Type, fwd[0].Values)
	fmt.Println(rev[0].Name, rev[0].Type, rev[0].Values)
	// Output:
	// 10.78.0.1
	// etcd1.lab.example. A [10.78.0.1]
	// 1.0.78.10.in-addr.arpa. PTR [etcd1.lab.example.]
}
