package role_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/role"
)

var updateGolden = flag.Bool("update-digests", false, "rewrite testdata/digests.golden from the current implementation")

// Output and input types of the golden digests: every wiring kind, and
// attribute fields of many kinds.
type (
	goldenPeer struct {
		Name string
		Addr netip.Addr
		Port uint16
	}
	goldenCert struct {
		PEM   []byte
		Until time.Time
		Key   attr.Secret[string]
	}
	goldenToken struct {
		Token attr.Secret[[]byte]
		Extra any
		err   error
	}
	goldenLabels map[string][]string
	goldenDNS    interface{ Resolve(string) string }

	goldenIn struct {
		Cert    role.Same[goldenCert]
		Join    role.One[goldenToken] `optional:"true"`
		Peers   role.All[goldenPeer]
		DNS     role.Uses[goldenDNS]
		Name    string              `attr:"golden.name"`
		Port    int                 `attr:"golden.port"`
		Ratio   float64             `attr:"golden.ratio"`
		Wait    time.Duration       `attr:"golden.wait"`
		Tags    []string            `attr:"golden.tags"`
		Labels  goldenLabels        `attr:"golden.labels"`
		Pass    attr.Secret[string] `attr:"golden.pass"`
		Addr    *netip.Addr         `attr:"golden.addr"`
		Any     any                 `attr:"golden.any"`
		Small   int8                `attr:"golden.small"`
		Pair    [2]uint32           `attr:"golden.pair"`
		skipped int
	}
	goldenOut struct{ N int }
)

type goldenRole struct{}

func (goldenRole) Meta() role.Meta { return role.Meta{Name: "golden"} }
func (goldenRole) Run(context.Context, *role.Context, goldenIn) (goldenOut, error) {
	return goldenOut{}, nil
}

// goldenInputs builds n inputs deterministically, from empty to full.
func goldenInputs(n int) []goldenIn {
	floats := []float64{0, math.Copysign(0, -1), 1.5, math.NaN(), math.Inf(1), math.Inf(-1), -3.25e300}
	ins := []goldenIn{{}}
	for i := 1; i < n; i++ {
		in := goldenIn{
			Name:  strings.Repeat("n", i%5) + fmt.Sprint(i),
			Port:  i * 7919 % 65536,
			Ratio: floats[i%len(floats)],
			Wait:  time.Duration(i) * time.Millisecond,
			Small: int8(-i),
			Pair:  [2]uint32{uint32(i), math.MaxUint32 - uint32(i)},
		}
		in.Cert.Role = "cert"
		in.Cert.Value.PEM = []byte(fmt.Sprintf("-----PEM %d-----", i))
		if i%3 == 0 {
			in.Cert.Value.PEM = nil
		}
		in.Cert.Value.Until = time.Date(2026, 1, 1+i, 0, 0, i, 0, time.UTC)
		in.Cert.Value.Key = attr.Conceal(fmt.Sprintf("key-%d", i))
		if i%2 == 0 {
			in.Join = role.One[goldenToken]{Role: "init", Node: "n0", Value: goldenToken{Token: attr.Conceal([]byte{byte(i), 0, 255})}}
			switch i % 8 {
			case 0:
				in.Join.Value.Extra = i
			case 2:
				in.Join.Value.Extra = "extra"
			case 4:
				in.Join.Value.Extra = &goldenPeer{Name: "p"}
			}
			in.Join.Value.err = errors.New("unexported error")
		}
		for k := range i % 6 {
			in.Peers = append(in.Peers, role.Peer[goldenPeer]{Node: fmt.Sprintf("n%d", k), Role: "peer",
				Value: goldenPeer{Name: fmt.Sprint(k), Addr: netip.AddrFrom4([4]byte{10, 0, byte(i), byte(k)}), Port: uint16(k)}})
		}
		if i%4 != 1 {
			in.Tags = []string{"a", fmt.Sprint(i)}
		}
		if i%5 != 0 {
			in.Labels = goldenLabels{"zone": {fmt.Sprint(i % 3)}, "rack": nil, fmt.Sprint(i): {"x", "y"}}
		}
		in.Pass = attr.Conceal(fmt.Sprint("pw", i))
		if i%3 == 1 {
			a := netip.MustParseAddr(fmt.Sprintf("fd00::%x", i))
			in.Addr = &a
		}
		switch i % 5 {
		case 1:
			in.Any = map[int]string{i: "v", -i: "w"}
		case 2:
			in.Any = []any{nil, 1.5, "s", int64(i)}
		case 3:
			in.Any = struct{ X, y int }{i, -i}
		}
		ins = append(ins, in)
	}
	return ins
}

// The digests of role inputs are journaled and compared with those
// earlier versions wrote: testdata/digests.golden holds what DigestInputs
// gave for goldenInputs when it was written, and must keep giving.
func TestDigestInputsGolden(t *testing.T) {
	def := role.Of(goldenRole{})
	require.NoError(t, def.Err())
	var b strings.Builder
	for i, in := range goldenInputs(200) {
		total, fields, err := def.DigestInputs(in)
		require.NoError(t, err)
		fmt.Fprintf(&b, "%d %s\n", i, total)
		for _, name := range def.DigestedInputs() {
			fmt.Fprintf(&b, "%d %s %s\n", i, name, fields[name])
		}
	}
	const golden = "testdata/digests.golden"
	if *updateGolden {
		require.NoError(t, os.WriteFile(golden, []byte(b.String()), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), b.String())
}
