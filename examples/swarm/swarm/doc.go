// Package swarm holds the roles that deploy a real Docker Swarm with mason:
// Debian's dockerd on every node, secured with mutual TLS, a demo service
// on every node, and mason's own DNS and L4 load balancer in front of it.
//
// The roles, each a Go type in its own file, and what they show:
//
//   - [CA] creates the deployment's "docker" and "netsvc" certificate
//     authorities; [EngineCert] issues each engine a server certificate
//     naming exactly its node (its DNS name and its address);
//     [Operator] writes a client certificate for the docker CLI.
//   - [Engine] (workers) and [ManagerEngine] (managers) write daemon.json
//     and run dockerd with --tlsverify on the node's address; the
//     controller talks to the Engine API with its own client certificate
//     (package dockerapi). A changed setting rolls over the nodes in
//     batches behind a breaker: drain, reconfigure, restart, wait Ready,
//     activate.
//   - [Image] builds the demo image from Debian's busybox-static on the
//     controller (no registry is reachable) and loads it into each engine.
//   - [Init] initialises the swarm on the first manager, with explicit
//     advertise and data-path addresses; its join tokens are attr.Secret
//     outputs, and it is idempotent (a node already in the deployment's
//     swarm is not initialised again; one in another swarm is an error).
//   - [Manager] joins the other managers one at a time, each waiting until
//     it is reachable; [Worker] joins workers in parallel. Both pass every
//     known manager address.
//   - [Service] runs the demo service in global mode, published in host
//     mode on every node (this kernel has no IPVS for the routing mesh);
//     [Endpoint] waits until a node's task answers.
//   - [Netsvcd] runs mason's network services daemon (netsvc/daemon: DNS
//     and the load balancer, mutual-TLS API) on the service node, so they
//     outlive the controller; [DNS] keeps an A record per node and one for
//     the service; [LB] keeps a frontend whose backends are exactly the
//     nodes that answer (an aggregate input).
//   - [Leave] takes a node out: its LB backend and DNS record go first,
//     then drain, demote (managers), leave and node rm; the quorum is
//     checked before any manager goes.
//   - [Verify] sends real HTTP requests through the load balancer.
//
// [Deployment] binds them; [Up] creates lab nodes, plans and applies, and
// proves the service answers through the load balancer; [Destroy] removes
// everything.
package swarm

import "github.com/masonops/mason/attr"

// Certificate authorities (pki services) of the deployment.
const (
	// DockerCA signs the engines' server certificates and the clients
	// (controller, operator) they let in.
	DockerCA = "docker"
	// NetsvcCA signs the network services daemon's API certificate and
	// its clients.
	NetsvcCA = "netsvc"
)

// ControllerName is the common name of the controller's client
// certificates.
const ControllerName = "mason-controller"

// Attribute keys the roles read.
var (
	Domain = attr.New[string]("swarm.domain").
		WithDoc("DNS zone of the deployment: node names in certificates and records (m1.<domain>)").
		WithDefault("swarm.mason.lab")
	EngineLabels = attr.New[[]string]("docker.labels").
			WithDoc("engine labels written to daemon.json (key=value); changing them rolls the engines over in batches").
			WithDefault([]string{})
	LogMaxSize = attr.New[string]("docker.log_max_size").
			WithDoc("json-file log-opts max-size in daemon.json; changing it rolls the engines over in batches").
			WithDefault("10m")
	Busybox = attr.New[string]("swarm.busybox").
		WithDoc("path on the controller of the static busybox the demo image is built from (Debian busybox-static)").
		WithDefault("/bin/busybox")
	ServiceName = attr.New[string]("swarm.service").
			WithDoc("name of the demo service, and of its DNS record").
			WithDefault("demo")
	ServicePort = attr.New[int]("swarm.service_port").
			WithDoc("port the demo service is published on, in host mode, on every node").
			WithDefault(8080)
	LBPort = attr.New[int]("swarm.lb_port").
		WithDoc("port of the load balancer's frontend on the service node").
		WithDefault(80)
	OperatorDir = attr.New[string]("swarm.operator_dir").
			WithDoc("directory on the controller for the operator's docker client certificate (DOCKER_CERT_PATH)").
			WithDefault("/var/lib/mason/swarm-example/operator")
	NetsvcdBinary = attr.New[string]("netsvc.binary").
			WithDoc("program on the controller that serves `netsvcd ARGS` (copied to the service node); empty means this program").
			WithDefault("")
)

// Keys lists every attribute key of the package, for Declare.
func Keys() []attr.Decl {
	return []attr.Decl{Domain, EngineLabels, LogMaxSize, Busybox, ServiceName, ServicePort, LBPort, OperatorDir, NetsvcdBinary}
}

// Paths and ports on the nodes.
const (
	EnginePKIDir = "/etc/docker/pki"
	DaemonJSON   = "/etc/docker/daemon.json"
	SwarmPort    = 2377

	NetsvcDir     = "/var/lib/mason-netsvc"
	NetsvcPKIDir  = "/etc/mason-netsvc/pki"
	NetsvcAPIPort = 8853
	DNSPort       = 53
)
