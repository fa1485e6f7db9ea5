package authdns_test

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/store/mem"
)

func Example() {
	st := mem.New()
	defer st.Close()
	srv, err := authdns.New(st, nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ctx := context.Background()
	if err := srv.AddZone(ctx, authdns.Zone{Name: "lab.example."}); err != nil {
		panic(err)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		panic(err)
	}

	// A role publishes its node's address mid-workflow...
	var d netsvc.DNS = srv
	if err := d.Upsert(ctx, "lab.example.", netsvc.RecordSet{Name: "etcd1", Type: netsvc.TypeA, Values: []string{"10.78.0.11"}}); err != nil {
		panic(err)
	}

	// ...and it resolves at once.
	q := new(dns.Msg)
	q.SetQuestion("etcd1.lab.example.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, addr)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Answer[0].(*dns.A).A, r.Authoritative)
	// Output: 10.78.0.11 true
}
