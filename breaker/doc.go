// Package breaker is a classic closed/open/half-open circuit breaker for
// calls to flaky external APIs: a vCenter, a cloud API, a DNS server.
//
// Closed, calls go through; after Failures consecutive failures the breaker
// opens and calls fail at once with an *OpenError, without touching the
// remote side. After OpenFor it lets up to HalfOpenProbes calls through: a
// success closes it, a failure opens it again. Nobody hammers a service
// that is already down.
//
// The package imports nothing from the rest of mason, so providers and
// services can use it without depending on the graph. (The graph's rollout
// breakers, which stop a deployment when too many node-roles fail, are a
// different thing and live in package graph: graph.Rollout.)
package breaker
