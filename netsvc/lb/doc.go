// Package lb is mason's embedded L4 load balancer: TCP frontends that spread
// connections over backends, with active health checks. It implements
// netsvc.LoadBalancer.
//
// Each frontend listens on one TCP address and, for every accepted
// connection, picks a backend (round-robin, or least connections), dials it
// within the connect timeout and copies bytes both ways, passing half-closes
// through, until both sides are done or the idle timeout passes. A backend
// that refuses the dial is skipped for that connection (the next one is
// tried) and counted as a failed check.
//
// Backends change at run time without touching established connections:
// added ones join the rotation at once; removed ones leave it at once and
// drain — their connections continue until they end or the frontend's drain
// timeout passes, then they are closed. Health checks (a TCP connect, or an
// HTTP GET) run per backend; Fall consecutive failures take a backend out of
// the rotation, Rise successes bring it back.
//
// Frontends and their backends are kept in a store.Store, so a Balancer
// created on the same store after a restart listens on the same addresses
// (including ports that were picked with ":0") with the same backends.
// Health state and counters are not persisted: they are facts about now.
// One Balancer owns a store prefix: it is the process that listens, so two
// Balancers must not share one (the daemon gives each node its own state).
package lb
