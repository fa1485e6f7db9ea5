package spec

import (
	"fmt"
	"math/big"
	"net/netip"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions returns the functions a spec may call: cty's standard library
// under Terraform's names, and the network helpers cidrhost, cidrsubnet and
// cidrnetmask.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc,
		"max": stdlib.MaxFunc, "min": stdlib.MinFunc, "parseint": stdlib.ParseIntFunc,
		"coalesce": stdlib.CoalesceFunc, "coalescelist": stdlib.CoalesceListFunc,
		"compact": stdlib.CompactFunc, "concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc,
		"distinct": stdlib.DistinctFunc, "element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc,
		"format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc,
		"join": stdlib.JoinFunc, "keys": stdlib.KeysFunc, "length": lengthFunc,
		"lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc, "upper": stdlib.UpperFunc,
		"merge": stdlib.MergeFunc, "range": stdlib.RangeFunc, "regex": stdlib.RegexFunc,
		"regexall": stdlib.RegexAllFunc, "replace": stdlib.ReplaceFunc, "reverse": stdlib.ReverseListFunc,
		"setunion": stdlib.SetUnionFunc, "slice": stdlib.SliceFunc, "sort": stdlib.SortFunc,
		"split": stdlib.SplitFunc, "strrev": stdlib.ReverseFunc, "substr": stdlib.SubstrFunc,
		"title": stdlib.TitleFunc, "trim": stdlib.TrimFunc, "trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc, "trimspace": stdlib.TrimSpaceFunc,
		"values": stdlib.ValuesFunc, "zipmap": stdlib.ZipmapFunc,
		"jsonencode": stdlib.JSONEncodeFunc, "jsondecode": stdlib.JSONDecodeFunc,
		"tostring": stdlib.MakeToFunc(cty.String), "tonumber": stdlib.MakeToFunc(cty.Number),
		"tobool": stdlib.MakeToFunc(cty.Bool), "tolist": stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":       stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"cidrhost":    cidrHostFunc,
		"cidrsubnet":  cidrSubnetFunc,
		"cidrnetmask": cidrNetmaskFunc,
	}
}

// cidrhost("10.78.0.0/24", 11) is "10.78.0.11"; a negative host number
// counts from the end of the range.
var cidrHostFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "hostnum", Type: cty.Number}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "invalid CIDR prefix: %s", err)
		}
		n := args[1].AsBigFloat()
		if !n.IsInt() {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(1, "host number must be a whole number")
		}
		num, _ := n.Int(nil)
		a, err := hostAddr(p.Masked(), num)
		if err != nil {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(1, "%s", err)
		}
		return cty.StringVal(a.String()), nil
	},
})

// cidrsubnet("10.78.0.0/16", 8, 2) is "10.78.2.0/24".
var cidrSubnetFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "newbits", Type: cty.Number}, {Name: "netnum", Type: cty.Number}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := netip.ParsePrefix(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "invalid CIDR prefix: %s", err)
		}
		nb, acc := args[1].AsBigFloat().Int64()
		if acc != big.Exact || nb < 0 || p.Bits()+int(nb) > p.Addr().BitLen() {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(1, "newbits must be a whole number from 0 to %d", p.Addr().BitLen()-p.Bits())
		}
		nn := args[2].AsBigFloat()
		num, _ := nn.Int(nil)
		if !nn.IsInt() || num.Sign() < 0 || num.BitLen() > int(nb) {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(2, "netnum must be a whole number from 0 to 2^%d-1", nb)
		}
		bits := p.Bits() + int(nb)
		shift := p.Addr().BitLen() - bits
		off := new(big.Int).Lsh(num, uint(shift))
		a, err := hostAddr(p.Masked(), off)
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		return cty.StringVal(netip.PrefixFrom(a, bits).String()), nil
	},
})

// cidrnetmask("10.78.0.0/16") is "255.255.0.0".
var cidrNetmaskFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := netip.ParsePrefix(args[0].AsString())
		if err != nil || !p.Addr().Is4() {
			return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "want an IPv4 CIDR prefix like \"10.0.0.0/16\"")
		}
		m := ^uint32(0) << (32 - p.Bits())
		if p.Bits() == 0 {
			m = 0
		}
		return cty.StringVal(netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()), nil
	},
})

// hostAddr returns the address num places into the masked prefix p
// (negative: from its end).
func hostAddr(p netip.Prefix, num *big.Int) (netip.Addr, error) {
	hostBits := p.Addr().BitLen() - p.Bits()
	size := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	n := new(big.Int).Set(num)
	if n.Sign() < 0 {
		n.Add(n, size)
	}
	if n.Sign() < 0 || n.Cmp(size) >= 0 {
		return netip.Addr{}, fmt.Errorf("host number %s is outside %s, which has %s addresses", num, p, size)
	}
	b := p.Addr().AsSlice()
	base := new(big.Int).SetBytes(b)
	base.Add(base, n)
	out := base.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return a, nil
}

// length counts a string's characters or a collection's elements, as in
// Terraform (cty's own length takes only collections).
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowMarked: true, AllowDynamicType: true}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v, marks := args[0].Unmark()
		var n cty.Value
		var err error
		if v.Type() == cty.String {
			n, err = stdlib.Strlen(v)
		} else {
			n, err = stdlib.Length(v)
		}
		if err != nil {
			return cty.UnknownVal(cty.Number), err
		}
		return n.WithMarks(marks), nil
	},
})
