package netsvc

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReverse(t *testing.T) {
	tests := []struct {
		prefix   string
		addr     string
		zone     string
		reverse  string
		inReZone bool
	}{
		{"10.78.0.0/24", "10.78.0.11", "0.78.10.in-addr.arpa.", "11.0.78.10.in-addr.arpa.", true},
		{"10.78.0.0/20", "10.78.3.4", "78.10.in-addr.arpa.", "4.3.78.10.in-addr.arpa.", true},
		{"10.0.0.0/8", "10.1.2.3", "10.in-addr.arpa.", "3.2.1.10.in-addr.arpa.", true},
		{"fd00:78::/64", "fd00:78::11", "0.0.0.0.0.0.0.0.8.7.0.0.0.0.d.f.ip6.arpa.", "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.7.0.0.0.0.d.f.ip6.arpa.", true},
		{"10.78.0.0/24", "10.79.0.1", "0.78.10.in-addr.arpa.", "1.0.79.10.in-addr.arpa.", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			z := ReverseZone(netip.MustParsePrefix(tt.prefix))
			require.Equal(t, tt.zone, z)
			r := ReverseName(netip.MustParseAddr(tt.addr))
			require.Equal(t, tt.reverse, r)
			require.Equal(t, tt.inReZone, InZone(z, r))
		})
	}
}

func TestFqdn(t *testing.T) {
	tests := []struct{ zone, name, want string }{
		{"lab.example.", "@", "lab.example."},
		{"lab.example", "", "lab.example."},
		{"lab.example.", "Etcd1", "etcd1.lab.example."},
		{"lab.example.", "x.other.", "x.other."},
		{".", "x", "x."},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Fqdn(tt.zone, tt.name))
	}
	require.True(t, InZone("lab.example.", "a.lab.example."))
	require.False(t, InZone("lab.example.", "alab.example."))
}

func TestCodesRoundTrip(t *testing.T) {
	for _, e := range []error{ErrUnknownZone, ErrNotFound, ErrExhausted, ErrAddrInUse, ErrInvalid, ErrExists} {
		code := Code(e)
		require.NotEmpty(t, code)
		require.Equal(t, e, FromCode(code))
	}
	require.Equal(t, "exhausted", Code(&ExhaustedError{Range: "r", Size: "4"}))
	require.Empty(t, Code(errors.New("other")))
	require.Nil(t, FromCode("nope"))
}
