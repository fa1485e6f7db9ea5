# A three-member cluster with a CA and a small Swarm on the same nodes.
deployment = "demo"

variable "members" {
  type        = number
  default     = 3
  description = "how many members"
  validation {
    condition     = var.members % 2 == 1
    error_message = "An etcd cluster needs an odd number of members."
  }
}

variable "token" {
  type    = string
  default = "prod"
}

variable "subnet" {
  type    = string
  default = "10.78.0.0/24"
}

provider "static" {
  subnet = var.subnet
  first  = cidrhost(var.subnet, 11)
}

service "dns" {
  zone = "mason.lab"
}

attrs = {
  "test.domain" = "mason.lab"
}

pool "members" {
  count  = var.members
  labels = { zone = "a" }
  attrs  = { "test.port" = 2379 }
}

role "ca" {}

role "peer-url" {
  on = [pool.members]
}

role "member" {
  on = [pool.members]
  attrs = {
    "test.token"   = format("%s-%d", var.token, var.members)
    "test.ca_pem"  = role.ca.output.cert_pem
    "test.timeout" = "10s"
  }
  inputs = {
    Peers = role.peer-url.outputs
  }
  rollout {
    batch = 1
  }
}

role "swarm-manager" {
  on = [pool.members]
}

role "swarm-worker" {
  on = [pool.members]
  attrs = {
    "swarm.join_token" = role.swarm_manager.output.worker_token
    "swarm.labels"     = [for n in pool.members.nodes : "node=${n}"]
  }
}
