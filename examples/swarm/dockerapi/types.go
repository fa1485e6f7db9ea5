package dockerapi

import "time"

// Local node states of Info.Swarm.LocalNodeState.
const (
	StateInactive = "inactive"
	StatePending  = "pending"
	StateActive   = "active"
	StateError    = "error"
	StateLocked   = "locked"
)

// Node roles, availabilities, states and manager reachabilities.
const (
	RoleManager = "manager"
	RoleWorker  = "worker"

	AvailabilityActive = "active"
	AvailabilityDrain  = "drain"

	NodeReady = "ready"
	NodeDown  = "down"

	Reachable   = "reachable"
	Unreachable = "unreachable"
)

// Info is the part of GET /info the example reads.
type Info struct {
	ID     string   `json:"ID"`
	Name   string   `json:"Name"`
	Labels []string `json:"Labels"`
	// ServerVersion is the engine's version ("20.10.24+dfsg1").
	ServerVersion string    `json:"ServerVersion"`
	Swarm         SwarmInfo `json:"Swarm"`
}

// SwarmInfo is the engine's view of its swarm membership.
type SwarmInfo struct {
	NodeID           string `json:"NodeID"`
	NodeAddr         string `json:"NodeAddr"`
	LocalNodeState   string `json:"LocalNodeState"`
	ControlAvailable bool   `json:"ControlAvailable"`
	Error            string `json:"Error"`
	RemoteManagers   []Peer `json:"RemoteManagers"`
	// Cluster is set on managers only.
	Cluster *ClusterInfo `json:"Cluster"`
}

// Peer is a manager as another node knows it.
type Peer struct {
	NodeID string `json:"NodeID"`
	Addr   string `json:"Addr"`
}

// ClusterInfo identifies a swarm.
type ClusterInfo struct {
	ID   string `json:"ID"`
	Spec Spec   `json:"Spec"`
}

// Spec is the part of a swarm's spec the example sets.
type Spec struct {
	Name   string            `json:"Name,omitempty"`
	Labels map[string]string `json:"Labels,omitempty"`
}

// InitRequest is the body of POST /swarm/init.
type InitRequest struct {
	ListenAddr    string `json:"ListenAddr"`
	AdvertiseAddr string `json:"AdvertiseAddr"`
	DataPathAddr  string `json:"DataPathAddr"`
	Spec          Spec   `json:"Spec"`
}

// JoinRequest is the body of POST /swarm/join. The token is a secret: it
// goes only into this request body, never into a log or an error.
type JoinRequest struct {
	ListenAddr    string   `json:"ListenAddr"`
	AdvertiseAddr string   `json:"AdvertiseAddr"`
	DataPathAddr  string   `json:"DataPathAddr"`
	RemoteAddrs   []string `json:"RemoteAddrs"`
	JoinToken     string   `json:"JoinToken"`
	Availability  string   `json:"Availability,omitempty"`
}

// Swarm is GET /swarm.
type Swarm struct {
	ID         string     `json:"ID"`
	Spec       Spec       `json:"Spec"`
	JoinTokens JoinTokens `json:"JoinTokens"`
}

// JoinTokens are a swarm's join tokens.
type JoinTokens struct {
	Worker  string `json:"Worker"`
	Manager string `json:"Manager"`
}

// Version is an object's version, for updates.
type Version struct {
	Index uint64 `json:"Index"`
}

// Node is a swarm node as a manager sees it.
type Node struct {
	ID            string         `json:"ID"`
	Version       Version        `json:"Version"`
	Spec          NodeSpec       `json:"Spec"`
	Description   NodeDesc       `json:"Description"`
	Status        NodeStatus     `json:"Status"`
	ManagerStatus *ManagerStatus `json:"ManagerStatus"`
}

// NodeSpec is a node's desired role and availability.
type NodeSpec struct {
	Name         string            `json:"Name,omitempty"`
	Labels       map[string]string `json:"Labels,omitempty"`
	Role         string            `json:"Role"`
	Availability string            `json:"Availability"`
}

// NodeDesc is what the node reported about itself.
type NodeDesc struct {
	Hostname string     `json:"Hostname"`
	Engine   EngineDesc `json:"Engine"`
}

// EngineDesc is the node's engine as it reported itself.
type EngineDesc struct {
	EngineVersion string            `json:"EngineVersion"`
	Labels        map[string]string `json:"Labels"`
}

// NodeStatus is the node's state as the managers see it.
type NodeStatus struct {
	State   string `json:"State"`
	Message string `json:"Message"`
	Addr    string `json:"Addr"`
}

// ManagerStatus is set for managers.
type ManagerStatus struct {
	Leader       bool   `json:"Leader"`
	Reachability string `json:"Reachability"`
	Addr         string `json:"Addr"`
}

// Image is the part of GET /images/NAME/json the example reads.
type Image struct {
	ID       string   `json:"Id"`
	RepoTags []string `json:"RepoTags"`
}

// ServiceSpec is the part of a service spec the example sets.
type ServiceSpec struct {
	Name         string            `json:"Name"`
	Labels       map[string]string `json:"Labels,omitempty"`
	TaskTemplate TaskSpec          `json:"TaskTemplate"`
	Mode         ServiceMode       `json:"Mode"`
	UpdateConfig *UpdateConfig     `json:"UpdateConfig,omitempty"`
	EndpointSpec *EndpointSpec     `json:"EndpointSpec,omitempty"`
}

// UpdateConfig says how swarm rolls a changed service over its tasks.
type UpdateConfig struct {
	Parallelism uint64 `json:"Parallelism"`
	// FailureAction is "pause", "continue" or "rollback".
	FailureAction string `json:"FailureAction,omitempty"`
	// Order is "stop-first" or "start-first".
	Order string `json:"Order,omitempty"`
}

// TaskSpec is a service's task template.
type TaskSpec struct {
	ContainerSpec ContainerSpec     `json:"ContainerSpec"`
	RestartPolicy *RestartPolicy    `json:"RestartPolicy,omitempty"`
	Networks      []NetworkAttach   `json:"Networks,omitempty"`
	ForceUpdate   uint64            `json:"ForceUpdate,omitempty"`
	Placement     *Placement        `json:"Placement,omitempty"`
	Resources     map[string]any    `json:"Resources,omitempty"`
	LogDriver     map[string]string `json:"LogDriver,omitempty"`
}

// ContainerSpec is what each task runs.
type ContainerSpec struct {
	Image    string   `json:"Image"`
	Command  []string `json:"Command,omitempty"`
	Args     []string `json:"Args,omitempty"`
	Env      []string `json:"Env,omitempty"`
	Hostname string   `json:"Hostname,omitempty"`
	// StopGracePeriod is in nanoseconds.
	StopGracePeriod *int64 `json:"StopGracePeriod,omitempty"`
}

// RestartPolicy says when swarm restarts a task.
type RestartPolicy struct {
	Condition string `json:"Condition,omitempty"`
	// Delay is in nanoseconds.
	Delay *int64 `json:"Delay,omitempty"`
}

// NetworkAttach attaches tasks to a network.
type NetworkAttach struct {
	Target string `json:"Target"`
}

// Placement constrains where tasks run.
type Placement struct {
	Constraints []string `json:"Constraints,omitempty"`
}

// ServiceMode is replicated or global; the example uses global.
type ServiceMode struct {
	Global     *struct{}   `json:"Global,omitempty"`
	Replicated *Replicated `json:"Replicated,omitempty"`
}

// Replicated is the replicated mode's replica count.
type Replicated struct {
	Replicas *uint64 `json:"Replicas,omitempty"`
}

// EndpointSpec publishes ports.
type EndpointSpec struct {
	Mode  string       `json:"Mode,omitempty"`
	Ports []PortConfig `json:"Ports,omitempty"`
}

// PortConfig is one published port.
type PortConfig struct {
	Protocol      string `json:"Protocol"`
	TargetPort    uint32 `json:"TargetPort"`
	PublishedPort uint32 `json:"PublishedPort"`
	// PublishMode "host" binds the port on the node running the task;
	// "ingress" would need the routing mesh (IPVS).
	PublishMode string `json:"PublishMode"`
}

// Service is GET /services/ID.
type Service struct {
	ID      string      `json:"ID"`
	Version Version     `json:"Version"`
	Spec    ServiceSpec `json:"Spec"`
}

// Task is one of a service's tasks.
type Task struct {
	ID           string     `json:"ID"`
	ServiceID    string     `json:"ServiceID"`
	NodeID       string     `json:"NodeID"`
	DesiredState string     `json:"DesiredState"`
	Status       TaskStatus `json:"Status"`
}

// TaskStatus is a task's observed state ("running", "failed", ...).
type TaskStatus struct {
	Timestamp time.Time `json:"Timestamp"`
	State     string    `json:"State"`
	Message   string    `json:"Message"`
	Err       string    `json:"Err"`
}
