// Command netsvcbench runs one side of bench/netsvc.sh: mason's embedded
// DNS server loaded from a zone file, mason's load balancer in front of one
// backend, or the plain HTTP backend both load balancers share. It serves
// until SIGTERM or SIGINT and prints "ready ADDR" once listening.
//
//	netsvcbench dns -listen 127.0.0.1:15354 -zone bench.test. -zonefile bench.test.zone
//	netsvcbench lb -listen 127.0.0.1:18082 -backend 127.0.0.1:18080
//	netsvcbench backend -listen 127.0.0.1:18080
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/authdns"
	"github.com/masonops/mason/netsvc/lb"
	"github.com/masonops/mason/store/mem"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: netsvcbench dns|lb|backend [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	zone := fs.String("zone", "bench.test.", "zone (dns)")
	zonefile := fs.String("zonefile", "", "zone file to load (dns)")
	backend := fs.String("backend", "", "backend address (lb)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	_ = fs.Parse(os.Args[2:])
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "netsvcbench:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var err error
	switch os.Args[1] {
	case "dns":
		err = serveDNS(ctx, *listen, *zone, *zonefile)
	case "lb":
		err = serveLB(ctx, *listen, *backend)
	case "backend":
		err = serveBackend(ctx, *listen)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "netsvcbench:", err)
		os.Exit(1)
	}
}

// serveDNS loads the A/AAAA/CNAME/TXT/SRV/PTR records of a zone file into
// mason's DNS server, the same file BIND serves.
func serveDNS(ctx context.Context, listen, zone, zonefile string) error {
	st := mem.New()
	defer st.Close()
	srv, err := authdns.New(st, nil)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.AddZone(ctx, authdns.Zone{Name: zone}); err != nil {
		return err
	}
	f, err := os.Open(zonefile)
	if err != nil {
		return err
	}
	sets := map[[2]string]*netsvc.RecordSet{}
	var order [][2]string
	zp := dns.NewZoneParser(f, zone, zonefile)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		t := netsvc.RRType(dns.TypeToString[rr.Header().Rrtype])
		if !t.Valid() {
			continue // SOA and NS come from the zone itself
		}
		k := [2]string{strings.ToLower(rr.Header().Name), string(t)}
		rs := sets[k]
		if rs == nil {
			rs = &netsvc.RecordSet{Name: k[0], Type: t, TTL: rr.Header().Ttl}
			sets[k] = rs
			order = append(order, k)
		}
		val := strings.TrimPrefix(rr.String(), rr.Header().String())
		if txt, ok := rr.(*dns.TXT); ok {
			val = strings.Join(txt.Txt, "")
		}
		rs.Values = append(rs.Values, val)
	}
	f.Close()
	if err := zp.Err(); err != nil {
		return err
	}
	for _, k := range order {
		if err := srv.Upsert(ctx, zone, *sets[k]); err != nil {
			return err
		}
	}
	addr, err := srv.Listen(listen)
	if err != nil {
		return err
	}
	fmt.Println("ready", addr, len(order), "record sets")
	<-ctx.Done()
	return nil
}

func serveLB(ctx context.Context, listen, backend string) error {
	st := mem.New()
	defer st.Close()
	b, err := lb.New(ctx, st, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureFrontend(ctx, netsvc.Frontend{Name: "bench", Listen: listen}); err != nil {
		return err
	}
	if err := b.SetBackends(ctx, "bench", []netsvc.Backend{{Addr: backend}}); err != nil {
		return err
	}
	s, err := b.Status(ctx, "bench")
	if err != nil {
		return err
	}
	fmt.Println("ready", s.Listen)
	<-ctx.Done()
	return nil
}

func serveBackend(ctx context.Context, listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	body := []byte("hello from the bench backend\n")
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go hs.Serve(ln)
	fmt.Println("ready", ln.Addr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
