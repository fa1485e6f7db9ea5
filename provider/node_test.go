package provider

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestPickInterfaceAddr(t *testing.T) {
	tests := []struct {
		name    string
		private []netip.Addr
		public  []netip.Addr
		within  []netip.Prefix
		want    string
	}{
		{"first private IPv4", addrs("fd00::1", "10.0.0.5", "10.0.0.6"), addrs("203.0.113.1"), nil, "10.0.0.5"},
		{"private IPv6 before public", addrs("fd00::1"), addrs("203.0.113.1"), nil, "fd00::1"},
		{"public when no private", nil, addrs("2001:db8::1", "203.0.113.1"), nil, "203.0.113.1"},
		{"skips loopback and link-local", addrs("127.0.0.1", "169.254.1.1", "fe80::1", "192.168.1.2"), nil, nil, "192.168.1.2"},
		{"within a network", addrs("10.0.0.5", "172.16.0.9"), addrs("203.0.113.1"), []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}, "172.16.0.9"},
		{"within picks public too", addrs("10.0.0.5"), addrs("203.0.113.1"), []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, "203.0.113.1"},
		{"first matching prefix wins", addrs("10.0.0.5", "172.16.0.9"), nil, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")}, "10.0.0.5"},
		{"within with no match", addrs("10.0.0.5"), nil, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, "invalid IP"},
		{"nothing", nil, nil, nil, "invalid IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, PickInterfaceAddr(tc.private, tc.public, tc.within...).String())
		})
	}
}

func TestLoginCandidates(t *testing.T) {
	tests := []struct {
		login Login
		want  []string
	}{
		{Login{}, nil},
		{Login{User: "root"}, []string{"root"}},
		{Login{Fallbacks: []string{"ubuntu", "root"}}, []string{"ubuntu", "root"}},
		{Login{User: "root", Fallbacks: []string{"ubuntu", "root", "", "ubuntu"}}, []string{"root", "ubuntu"}},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.login.Candidates())
	}
}

type vendorVM struct{ MoRef string }

type asser struct{ inner *vendorVM }

func (a asser) As(target any) bool {
	p, ok := target.(**vendorVM)
	if ok {
		*p = a.inner
	}
	return ok
}

func TestNodeAs(t *testing.T) {
	vm := &vendorVM{MoRef: "vm-42"}
	n := &Node{Extra: vm}
	var got *vendorVM
	require.True(t, n.As(&got))
	require.Same(t, vm, got)

	var wrong *Login
	require.False(t, n.As(&wrong), "a different type is not assigned")
	require.Nil(t, wrong)
	require.False(t, n.As(got), "target must be a pointer to the type")
	require.False(t, n.As(nil))
	require.False(t, (&Node{}).As(&got), "no extras")
	var nilNode *Node
	require.False(t, nilNode.As(&got))

	// Extra values may offer their own As for several types.
	n = &Node{Extra: asser{inner: vm}}
	got = nil
	require.True(t, n.As(&got))
	require.Same(t, vm, got)
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		spec NodeSpec
		ok   bool
	}{
		{NodeSpec{ID: "n1"}, true},
		{NodeSpec{ID: StableID("swarm", "manager-0")}, true},
		{NodeSpec{ID: "n1", Name: "etcd-0"}, true},
		{NodeSpec{ID: ""}, false},
		{NodeSpec{ID: "N1"}, false},
		{NodeSpec{ID: "n_1"}, false},
		{NodeSpec{ID: "-n"}, false},
		{NodeSpec{ID: "n1", Name: "bad name"}, false},
	}
	for _, tc := range tests {
		err := tc.spec.Validate()
		if tc.ok {
			require.NoError(t, err, "%+v", tc.spec)
		} else {
			require.Error(t, err, "%+v", tc.spec)
		}
	}
}

func TestStableID(t *testing.T) {
	a := StableID("swarm", "manager-0")
	require.Equal(t, a, StableID("swarm", "manager-0"), "same names, same ID")
	require.NotEqual(t, a, StableID("swarm", "manager-1"))
	require.NotEqual(t, StableID("ab", "c"), StableID("a", "bc"), "parts are delimited")
	require.NoError(t, NodeSpec{ID: a}.Validate())
}
