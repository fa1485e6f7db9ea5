// Package dockerapi is a small client of the Docker Engine API over mutual
// TLS: the calls the Swarm example needs (engine info, swarm init, join and
// leave, nodes, services, tasks, image load) and their types, written
// against API version 1.41 (Docker 20.10, Debian bookworm's docker.io).
//
// The example talks to dockerd over HTTPS instead of running the docker CLI
// on the nodes for three reasons: a join token passed to `docker swarm join
// --token` sits in the command line of a process, readable by every user of
// the machine in /proc, while in an API call it travels only in a TLS
// request body; the controller holds one client certificate and needs no
// CLI (or CLI version) on any node; and API errors come back as status
// codes the roles branch on (503: not a manager, 406: not in a swarm)
// instead of text to parse. The types are the few fields the example reads
// and writes, not the whole API: the moby client module would add a large
// dependency tree for a handful of JSON structs.
package dockerapi
