// Package main is not built by go build ./...: it lives under testdata.
// TestNonRoleDoesNotCompile builds it and expects the compiler to refuse
// each registration below.
package main

import (
	"context"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/role"
	"github.com/masonops/mason/spec"
)

// noMeta has a Run but no Meta.
type noMeta struct{}

func (noMeta) Run(context.Context, *role.Context, struct{}) (struct{}, error) {
	return struct{}{}, nil
}

// badRun has a Meta, and a Run of the wrong shape.
type badRun struct{}

func (badRun) Meta() role.Meta                   { return role.Meta{Name: "bad"} }
func (badRun) Run(context.Context, string) error { return nil }

func main() {
	d := graph.NewDeployment("x")
	p := d.Pool("p")
	d.Bind(p, struct{}{})     // ERROR: not a *role.Def
	_ = role.Of(noMeta{})     // ERROR: no Meta
	_ = role.Of(badRun{})     // ERROR: Run of the wrong shape
	_ = role.Of("etcd")       // ERROR: not a role at all
	reg := spec.NewRegistry() //
	_ = reg.Roles(badRun{})   // ERROR: not a *role.Def
}
