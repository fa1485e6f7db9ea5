package authdns

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/netsvc"
	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	"github.com/masonops/mason/store/mem"
)

const zone = "lab.example."

// newServer starts a server on a free loopback port with one zone and a few
// records, and stops it when the test ends.
func newServer(t *testing.T, st store.Store) (*Server, string) {
	t.Helper()
	if st == nil {
		m := mem.New()
		t.Cleanup(func() { m.Close() })
		st = m
	}
	s, err := New(st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	require.NoError(t, s.AddZone(ctx, Zone{Name: zone}))
	addr, err := s.Listen("127.0.0.1:0")
	require.NoError(t, err)
	for _, rs := range []netsvc.RecordSet{
		{Name: "etcd1", Type: netsvc.TypeA, Values: []string{"10.78.0.11"}},
		{Name: "etcd1", Type: netsvc.TypeTXT, Values: []string{"role=etcd member"}},
		{Name: "v6", Type: netsvc.TypeAAAA, Values: []string{"fd00:78::11"}},
		{Name: "api", Type: netsvc.TypeCNAME, Values: []string{"etcd1"}},
		{Name: "out", Type: netsvc.TypeCNAME, Values: []string{"www.elsewhere.test."}},
		{Name: "_etcd-server._tcp", Type: netsvc.TypeSRV, Values: []string{"0 10 2380 etcd1.lab.example."}},
		{Name: "a.b.deep", Type: netsvc.TypeA, Values: []string{"10.78.0.12", "10.78.0.13"}},
	} {
		require.NoError(t, s.Upsert(ctx, zone, rs), rs.Name)
	}
	return s, addr
}

func query(t *testing.T, netw, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr)
	require.NoError(t, err)
	return r
}

func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return out
}

func TestQueries(t *testing.T) {
	_, addr := newServer(t, nil)
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answers []string
		soaInNs bool // negative answer: SOA in authority
		aa      bool
	}{
		{"A", "etcd1.lab.example.", dns.TypeA, dns.RcodeSuccess, []string{"10.78.0.11"}, false, true},
		{"case-insensitive", "ETCD1.Lab.Example.", dns.TypeA, dns.RcodeSuccess, []string{"10.78.0.11"}, false, true},
		{"AAAA", "v6.lab.example.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00:78::11"}, false, true},
		{"TXT", "etcd1.lab.example.", dns.TypeTXT, dns.RcodeSuccess, []string{`"role=etcd member"`}, false, true},
		{"SRV", "_etcd-server._tcp.lab.example.", dns.TypeSRV, dns.RcodeSuccess, []string{"0 10 2380 etcd1.lab.example."}, false, true},
		{"CNAME chased in zone", "api.lab.example.", dns.TypeA, dns.RcodeSuccess, []string{"etcd1.lab.example.", "10.78.0.11"}, false, true},
		{"CNAME asked for", "api.lab.example.", dns.TypeCNAME, dns.RcodeSuccess, []string{"etcd1.lab.example."}, false, true},
		{"CNAME out of zone not chased", "out.lab.example.", dns.TypeA, dns.RcodeSuccess, []string{"www.elsewhere.test."}, false, true},
		{"two values", "a.b.deep.lab.example.", dns.TypeA, dns.RcodeSuccess, []string{"10.78.0.12", "10.78.0.13"}, false, true},
		{"NXDOMAIN", "nope.lab.example.", dns.TypeA, dns.RcodeNameError, nil, true, true},
		{"NODATA: name exists, type does not", "etcd1.lab.example.", dns.TypeAAAA, dns.RcodeSuccess, nil, true, true},
		{"NODATA: empty non-terminal", "b.deep.lab.example.", dns.TypeA, dns.RcodeSuccess, nil, true, true},
		{"NODATA: empty non-terminal higher up", "deep.lab.example.", dns.TypeA, dns.RcodeSuccess, nil, true, true},
		{"NXDOMAIN below a leaf", "x.etcd1.lab.example.", dns.TypeA, dns.RcodeNameError, nil, true, true},
		{"SOA at apex", "lab.example.", dns.TypeSOA, dns.RcodeSuccess, nil, false, true},
		{"NS at apex", "lab.example.", dns.TypeNS, dns.RcodeSuccess, []string{"ns.lab.example."}, false, true},
		{"not our zone: refused", "example.com.", dns.TypeA, dns.RcodeRefused, nil, false, false},
		{"parent of our zone: refused", "example.", dns.TypeA, dns.RcodeRefused, nil, false, false},
		{"zone transfer refused", "lab.example.", dns.TypeAXFR, dns.RcodeRefused, nil, false, false},
	}
	for _, netw := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			if tt.qtype == dns.TypeAXFR && netw == "udp" {
				continue // AXFR is a TCP-only query
			}
			t.Run(netw+"/"+tt.name, func(t *testing.T) {
				r := query(t, netw, addr, tt.qname, tt.qtype)
				require.Equal(t, dns.RcodeToString[tt.rcode], dns.RcodeToString[r.Rcode])
				require.Equal(t, tt.aa, r.Authoritative, "AA bit")
				require.False(t, r.RecursionAvailable, "RA bit must never be set")
				if tt.qtype == dns.TypeSOA {
					require.Len(t, r.Answer, 1)
					require.IsType(t, &dns.SOA{}, r.Answer[0])
				} else {
					require.Equal(t, tt.answers, answers(r))
				}
				if tt.soaInNs {
					require.Len(t, r.Ns, 1)
					soa, ok := r.Ns[0].(*dns.SOA)
					require.True(t, ok, "negative answer carries the zone SOA")
					require.Equal(t, zone, soa.Hdr.Name)
					require.EqualValues(t, 60, soa.Hdr.Ttl, "negative TTL")
				} else {
					require.Empty(t, r.Ns)
				}
			})
		}
	}
}

func soaSerial(t *testing.T, addr string) uint32 {
	r := query(t, "udp", addr, zone, dns.TypeSOA)
	require.Len(t, r.Answer, 1)
	return r.Answer[0].(*dns.SOA).Serial
}

func TestSerialBumpsAndServedImmediately(t *testing.T) {
	s, addr := newServer(t, nil)
	ctx := context.Background()
	before := soaSerial(t, addr)

	require.NoError(t, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "new", Type: netsvc.TypeA, Values: []string{"10.78.0.50"}}))
	// No sleep: served as soon as Upsert returns.
	require.Equal(t, []string{"10.78.0.50"}, answers(query(t, "udp", addr, "new.lab.example.", dns.TypeA)))
	afterUpsert := soaSerial(t, addr)
	require.Equal(t, before+1, afterUpsert)

	// An identical upsert changes nothing, so the serial stays.
	require.NoError(t, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "new", Type: netsvc.TypeA, Values: []string{"10.78.0.50"}}))
	require.Equal(t, afterUpsert, soaSerial(t, addr))

	require.NoError(t, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "new", Type: netsvc.TypeA, Values: []string{"10.78.0.51"}}))
	require.Equal(t, []string{"10.78.0.51"}, answers(query(t, "tcp", addr, "new.lab.example.", dns.TypeA)))
	require.Equal(t, afterUpsert+1, soaSerial(t, addr))

	require.NoError(t, s.Delete(ctx, zone, "new", netsvc.TypeA))
	require.Equal(t, dns.RcodeNameError, query(t, "udp", addr, "new.lab.example.", dns.TypeA).Rcode)
	require.Equal(t, afterUpsert+2, soaSerial(t, addr))

	// Deleting what is not there is not a change.
	require.NoError(t, s.Delete(ctx, zone, "new", netsvc.TypeA))
	require.Equal(t, afterUpsert+2, soaSerial(t, addr))
}

func TestRecursionRefused(t *testing.T) {
	_, addr := newServer(t, nil)
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.RecursionDesired = true
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeRefused, r.Rcode)
	require.False(t, r.RecursionAvailable)
	require.Empty(t, r.Answer)
}

func TestUpsertValidation(t *testing.T) {
	s, _ := newServer(t, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		zone string
		rs   netsvc.RecordSet
		want error
	}{
		{"unknown zone", "other.example.", netsvc.RecordSet{Name: "x", Type: netsvc.TypeA, Values: []string{"10.0.0.1"}}, netsvc.ErrUnknownZone},
		{"bad type", zone, netsvc.RecordSet{Name: "x", Type: "MX", Values: []string{"10 mx."}}, netsvc.ErrInvalid},
		{"bad A", zone, netsvc.RecordSet{Name: "x", Type: netsvc.TypeA, Values: []string{"fd00::1"}}, netsvc.ErrInvalid},
		{"bad AAAA", zone, netsvc.RecordSet{Name: "x", Type: netsvc.TypeAAAA, Values: []string{"10.0.0.1"}}, netsvc.ErrInvalid},
		{"no values", zone, netsvc.RecordSet{Name: "x", Type: netsvc.TypeA}, netsvc.ErrInvalid},
		{"outside zone", zone, netsvc.RecordSet{Name: "x.other.example.", Type: netsvc.TypeA, Values: []string{"10.0.0.1"}}, netsvc.ErrInvalid},
		{"CNAME beside other data", zone, netsvc.RecordSet{Name: "etcd1", Type: netsvc.TypeCNAME, Values: []string{"v6"}}, netsvc.ErrInvalid},
		{"data beside CNAME", zone, netsvc.RecordSet{Name: "api", Type: netsvc.TypeTXT, Values: []string{"x"}}, netsvc.ErrInvalid},
		{"CNAME at apex", zone, netsvc.RecordSet{Name: "@", Type: netsvc.TypeCNAME, Values: []string{"x"}}, netsvc.ErrInvalid},
		{"bad SRV", zone, netsvc.RecordSet{Name: "_x._tcp", Type: netsvc.TypeSRV, Values: []string{"ten 0 80 x."}}, netsvc.ErrInvalid},
		{"zone-file injection", zone, netsvc.RecordSet{Name: "x", Type: netsvc.TypePTR, Values: []string{"a.\nevil 60 IN A 1.2.3.4"}}, netsvc.ErrInvalid},
		{"wildcard", zone, netsvc.RecordSet{Name: "*", Type: netsvc.TypeA, Values: []string{"10.0.0.1"}}, netsvc.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Upsert(ctx, tt.zone, tt.rs)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestRecordsListedAndPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := bolt.Open(path, nil)
	require.NoError(t, err)
	s, _ := newServer(t, st)
	ctx := context.Background()
	sets, err := s.Records(ctx, zone)
	require.NoError(t, err)
	require.Len(t, sets, 7)
	require.Equal(t, netsvc.RecordSet{Name: "_etcd-server._tcp.lab.example.", Type: netsvc.TypeSRV, TTL: 300, Values: []string{"0 10 2380 etcd1.lab.example."}}, sets[0])
	serial, err := s.Serial(zone)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, st.Close())

	// A new server on the reopened file serves the same records and serial.
	st2, err := bolt.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st2.Close() })
	s2, err := New(st2, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s2.Close() })
	addr, err := s2.Listen("127.0.0.1:0")
	require.NoError(t, err)
	require.Equal(t, []string{"10.78.0.11"}, answers(query(t, "tcp", addr, "etcd1.lab.example.", dns.TypeA)))
	require.Equal(t, serial, soaSerial(t, addr))
	sets2, err := s2.Records(ctx, zone)
	require.NoError(t, err)
	require.Equal(t, sets, sets2)
}

// Two servers on one store stand for two controllers: each write bumps the
// serial exactly once, and each server follows the other's writes.
func TestConcurrentWritersShareStore(t *testing.T) {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	a, addrA := newServer(t, st)
	b, err := New(st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	addrB, err := b.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx := context.Background()
	before := soaSerial(t, addrA)

	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := a
			if i%2 == 1 {
				srv = b
			}
			errs <- srv.Upsert(ctx, zone, netsvc.RecordSet{Name: "host" + strconv.Itoa(i), Type: netsvc.TypeA, Values: []string{"10.78.1.1"}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Each server learns the other's writes through the store watch, so
	// after a moment: every write bumped the serial exactly once, on both.
	for _, srv := range []*Server{a, b} {
		require.Eventually(t, func() bool {
			s, _ := srv.Serial(zone)
			return s == before+n
		}, 5*time.Second, 10*time.Millisecond)
	}
	require.Equal(t, before+n, soaSerial(t, addrA))
	require.Equal(t, before+n, soaSerial(t, addrB))
	sets, err := b.Records(ctx, zone)
	require.NoError(t, err)
	require.Len(t, sets, 7+n)
}

func TestTruncationOverUDP(t *testing.T) {
	s, addr := newServer(t, nil)
	big := make([]string, 0, 60)
	for i := 1; i <= 60; i++ {
		big = append(big, "10.78.2."+strconv.Itoa(i))
	}
	require.NoError(t, s.Upsert(context.Background(), zone, netsvc.RecordSet{Name: "many", Type: netsvc.TypeA, Values: big}))
	m := new(dns.Msg)
	m.SetQuestion("many.lab.example.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	require.NoError(t, err)
	require.True(t, r.Truncated, "60 A records exceed 512 bytes")
	r = query(t, "tcp", addr, "many.lab.example.", dns.TypeA)
	require.False(t, r.Truncated)
	require.Len(t, r.Answer, 60)
}

// dig is an independent client: its view of the server must match.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("dig not installed (Debian package bind9-dnsutils); CI installs it")
		}
		t.Fatal("dig not installed: add bind9-dnsutils to .ci/debian-packages")
	}
	_, addr := newServer(t, nil)
	host, port, _ := strings.Cut(addr, ":")
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		full := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
		out, err := exec.CommandContext(ctx, dig, full...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"A over UDP", []string{"+short", "etcd1.lab.example.", "A"}, []string{"10.78.0.11"}},
		{"A over TCP", []string{"+tcp", "+short", "etcd1.lab.example.", "A"}, []string{"10.78.0.11"}},
		{"SRV", []string{"+short", "_etcd-server._tcp.lab.example.", "SRV"}, []string{"0 10 2380 etcd1.lab.example."}},
		{"NXDOMAIN", []string{"nope.lab.example.", "A"}, []string{"status: NXDOMAIN", "flags: qr aa rd;", "lab.example.\t\t60\tIN\tSOA"}},
		{"NODATA", []string{"+tcp", "etcd1.lab.example.", "MX"}, []string{"status: NOERROR", "ANSWER: 0", "AUTHORITY: 1"}},
		{"recursion refused", []string{"+recurse", "www.example.com.", "A"}, []string{"status: REFUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(tt.args...)
			for _, w := range tt.want {
				require.Contains(t, out, w)
			}
			require.NotContains(t, out, " ra;", "recursion must never be offered")
		})
	}
}

func TestClosedStoreStopsFollowing(t *testing.T) {
	st := mem.New()
	s, err := New(st, nil)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung after the store closed")
	}
	err = s.Upsert(context.Background(), zone, netsvc.RecordSet{Name: "x", Type: netsvc.TypeA, Values: []string{"10.0.0.1"}})
	require.Error(t, err)
	require.False(t, errors.Is(err, netsvc.ErrInvalid))
}

// Bound to a wildcard address the server answers through dns.Server (which
// replies from the address each query came to); bound to a specific one it
// uses its own UDP readers. Both must answer alike.
func TestListenWildcardAndMalformed(t *testing.T) {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	s, err := New(st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	require.NoError(t, s.AddZone(ctx, Zone{Name: zone}))
	require.NoError(t, s.Upsert(ctx, zone, netsvc.RecordSet{Name: "w", Type: netsvc.TypeA, Values: []string{"10.78.0.9"}}))
	wild, err := s.Listen("0.0.0.0:0")
	require.NoError(t, err)
	_, port, _ := strings.Cut(wild, ":")
	specific, err := s.Listen("127.0.0.1:0")
	require.NoError(t, err)

	for _, addr := range []string{"127.0.0.1:" + port, specific} {
		for _, netw := range []string{"udp", "tcp"} {
			require.Equal(t, []string{"10.78.0.9"}, answers(query(t, netw, addr, "w.lab.example.", dns.TypeA)), netw+" "+addr)
		}
		// A header that announces a question the packet does not hold.
		c, err := net.Dial("udp", addr)
		require.NoError(t, err)
		_, err = c.Write([]byte{0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, 'a', 'b'})
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		require.NoError(t, err, addr)
		c.Close()
		var r dns.Msg
		require.NoError(t, r.Unpack(buf[:n]))
		require.Equal(t, uint16(0xbeef), r.Id)
		require.Equal(t, dns.RcodeFormatError, r.Rcode, addr)
	}
}
