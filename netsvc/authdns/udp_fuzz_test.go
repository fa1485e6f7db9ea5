package authdns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store/mem"
)

// FuzzUDP sends raw datagrams to a listening server — the UDP fast path:
// its own unpacking, FORMERR replies, the answer written into a reused
// buffer, and forwarding aside to an upstream (another server on
// loopback). Whatever comes back is one well-formed reply to that
// datagram, within the UDP size limit; responses get no reply; and after
// every datagram the server still answers.
//
//	go test ./netsvc/authdns -run '^$' -fuzz FuzzUDP -fuzztime 2m
func FuzzUDP(f *testing.F) {
	ctx := context.Background()
	st := mem.New()
	f.Cleanup(func() { st.Close() })
	upstream, err := New(st, &Options{Prefix: "upstream/"})
	require.NoError(f, err)
	f.Cleanup(func() { upstream.Close() })
	require.NoError(f, upstream.AddZone(ctx, Zone{Name: "example.com."}))
	require.NoError(f, upstream.Upsert(ctx, "example.com.", netsvc.RecordSet{Name: "www", Type: netsvc.TypeA, Values: []string{"10.99.0.1"}}))
	upAddr, err := upstream.Listen("127.0.0.1:0")
	require.NoError(f, err)

	s, err := New(st, &Options{Forward: []string{upAddr}})
	require.NoError(f, err)
	f.Cleanup(func() { s.Close() })
	require.NoError(f, s.AddZone(ctx, Zone{Name: zone}))
	require.NoError(f, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "a", Type: netsvc.TypeA, Values: []string{"10.78.0.1"}}))
	big := make([]string, 0, 60)
	for i := 1; i <= 60; i++ {
		big = append(big, "10.78.2."+strconv.Itoa(i))
	}
	require.NoError(f, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "many", Type: netsvc.TypeA, Values: big}))
	addr, err := s.Listen("127.0.0.1:0")
	require.NoError(f, err)
	server, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(f, err)

	seed := func(name string, qtype uint16, edns bool, rd bool) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = rd
		if edns {
			m.SetEdns0(4096, false)
		}
		b, err := m.Pack()
		require.NoError(f, err)
		f.Add(b)
	}
	seed("a.lab.example.", dns.TypeA, false, false)
	seed("many.lab.example.", dns.TypeA, false, false) // truncated to 512
	seed("many.lab.example.", dns.TypeA, true, false)
	seed("www.example.com.", dns.TypeA, false, true) // forwarded
	seed("www.example.com.", dns.TypeA, true, true)
	seed("nope.lab.example.", dns.TypeTXT, false, false)
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})         // a response
	f.Add([]byte{0, 1, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a'}) // a broken question: FORMERR
	f.Add([]byte{0, 7, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0})         // UPDATE, no question

	alive := new(dns.Msg)
	alive.SetQuestion("a.lab.example.", dns.TypeA)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 4096 {
			return
		}
		// A socket per datagram: a late reply cannot be taken for the
		// next datagram's.
		c, err := net.DialUDP("udp", nil, server)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write(raw)
		require.NoError(t, err)
		wait := 300 * time.Millisecond
		isResponse := len(raw) >= 12 && raw[2]&0x80 != 0
		if len(raw) < 12 || isResponse {
			wait = 20 * time.Millisecond // no reply is expected
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			n = -1 // dropped
		} else {
			require.NoError(t, err)
		}
		if n >= 0 {
			require.GreaterOrEqual(t, len(raw), 12, "a datagram shorter than a header got a reply")
			require.False(t, isResponse, "a response got a reply")
			resp := new(dns.Msg)
			require.NoError(t, resp.Unpack(buf[:n]), "the reply is a well-formed DNS message")
			require.True(t, resp.Response)
			require.Equal(t, binary.BigEndian.Uint16(raw), resp.Id, "the reply answers this datagram")
			limit := dns.MinMsgSize
			req := new(dns.Msg)
			if req.Unpack(raw) == nil {
				if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
					limit = min(int(opt.UDPSize()), 4096)
				}
			}
			require.LessOrEqual(t, n, limit, "the reply fits the UDP size the query allows")
		}
		// The server still answers.
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(alive, addr)
		require.NoError(t, err)
		require.Len(t, r.Answer, 1)
	})
}
