// Package wire is the daemon API's wire format, shared by the server
// (netsvc/daemon) and the client (netsvc/daemon/client): JSON bodies posted
// to the paths below, and an Error body for every failed call.
package wire

import "github.com/masonops/mason/netsvc"

// The API's calls: every one is a POST of a JSON body.
const (
	DNSZone          = "/v1/dns/zone"
	DNSUpsert        = "/v1/dns/upsert"
	DNSDelete        = "/v1/dns/delete"
	DNSRecords       = "/v1/dns/records"
	IPAMRange        = "/v1/ipam/range"
	IPAMAllocate     = "/v1/ipam/allocate"
	IPAMRelease      = "/v1/ipam/release"
	IPAMAllocations  = "/v1/ipam/allocations"
	LBFrontend       = "/v1/lb/frontend"
	LBFrontendDelete = "/v1/lb/frontend/delete"
	LBBackends       = "/v1/lb/backends"
	LBBackendAdd     = "/v1/lb/backend/add"
	LBBackendRemove  = "/v1/lb/backend/remove"
	LBStatus         = "/v1/lb/status"
)

// Error is the body of every failed call.
type Error struct {
	Error string `json:"error"`
	// Code names the netsvc sentinel the error matches, if any.
	Code string `json:"code,omitempty"`
}

// Request bodies.
type (
	Upsert struct {
		Zone string           `json:"zone"`
		Set  netsvc.RecordSet `json:"set"`
	}
	Delete struct {
		Zone string        `json:"zone"`
		Name string        `json:"name"`
		Type netsvc.RRType `json:"type"`
	}
	Release struct {
		Range string `json:"range"`
		Owner string `json:"owner"`
	}
	Backends struct {
		Frontend string           `json:"frontend"`
		Backends []netsvc.Backend `json:"backends"`
	}
	Backend struct {
		Frontend string         `json:"frontend"`
		Backend  netsvc.Backend `json:"backend"`
	}
	Name struct {
		Name string `json:"name"`
	}
)
