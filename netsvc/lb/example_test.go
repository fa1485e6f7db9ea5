package lb_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/netsvc/lb"
	"github.com/masonops/mason/store/mem"
)

func Example() {
	ctx := context.Background()
	// Two API servers that answer with their name.
	var backends []netsvc.Backend
	for _, name := range []string{"api-1", "api-2"} {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, name)
				c.Close()
			}
		}()
		backends = append(backends, netsvc.Backend{Addr: ln.Addr().String(), Name: name})
	}

	st := mem.New()
	defer st.Close()
	b, _ := lb.New(ctx, st, nil)
	defer b.Close()
	var balancer netsvc.LoadBalancer = b
	_ = balancer.EnsureFrontend(ctx, netsvc.Frontend{Name: "kube-api", Listen: "127.0.0.1:0"})
	_ = balancer.SetBackends(ctx, "kube-api", backends)
	status, _ := balancer.Status(ctx, "kube-api")

	for range 4 {
		c, _ := net.DialTimeout("tcp", status.Listen, time.Second)
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		fmt.Print(line)
	}
	// Output:
	// api-2
	// api-1
	// api-2
	// api-1
}
