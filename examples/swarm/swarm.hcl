# The Swarm example's deployment (examples/swarm/swarm.Deployment) as a
# spec, run by mason's front end:
#
#   go run ./examples/swarm spec plan  -spec examples/swarm/swarm.hcl -state /var/lib/mason/swarm-example/state.db
#   go run ./examples/swarm spec apply -spec examples/swarm/swarm.hcl -state /var/lib/mason/swarm-example/state.db -var workers=3
#
# With the same lab and state file (its key-encryption key beside it,
# state.db.kek, or in $MASON_SWARM_KEK) it drives the same deployment as
# `go run ./examples/swarm`: node IDs, attribute values and wiring are the
# same, so one converges what the other made. The pki authorities live in
# that state too.
deployment = "swarm"

variable "managers" {
  type        = number
  default     = 1
  description = "managers m1..mN"
  validation {
    condition     = var.managers % 2 == 1
    error_message = "A swarm needs an odd number of managers (1, 3 or 5) to keep a raft quorum."
  }
}

variable "workers" {
  type        = number
  default     = 2
  description = "workers w1..wN"
}

variable "leaving" {
  type        = list(string)
  default     = []
  description = "nodes to take out of the swarm (drain, demote, leave, node rm) before they are dropped from the spec"
}

variable "lab" {
  type    = string
  default = "mason-swarm"
}

variable "lab_dir" {
  type        = string
  default     = ""
  description = "the lab's directory; empty means /var/lib/mason/labs/LAB"
}

variable "netsvcd" {
  type        = string
  default     = ""
  description = "program that serves `netsvcd ARGS` on the service node; empty means this program"
}

variable "state_dir" {
  type        = string
  default     = "/var/lib/mason/swarm-example"
  description = "where the operator's docker client certificate is written (DIR/operator)"
}

variable "labels" {
  type        = list(string)
  default     = []
  description = "engine labels of the workers; a change rolls over them in batches"
}

provider "lab" {
  name = var.lab
  dir  = var.lab_dir
}

attrs = {
  "swarm.operator_dir" = "${var.state_dir}/operator"
  "netsvc.binary"      = var.netsvcd
}

pool "managers" {
  nodes = formatlist("m%d", range(1, var.managers + 1))
}

pool "workers" {
  nodes = formatlist("w%d", range(1, var.workers + 1))
  attrs = { "docker.labels" = var.labels }
}

pool "services" {
  nodes = ["svc"]
}

pool "leaving" {
  nodes = var.leaving
}

# Once for the deployment.
role "swarm-ca" {}
role "swarm-operator-cert" {}
role "swarm-lb" {}
role "swarm-dns" {}
role "swarm-verify" {}

# The network services daemon: DNS and the load balancer.
role "netsvc-cert" { on = [pool.services] }
role "netsvcd" { on = [pool.services] }

# Every swarm node.
role "docker-engine-cert" { on = [pool.managers, pool.workers] }
role "demo-image" { on = [pool.managers, pool.workers] }
role "demo-endpoint" { on = [pool.managers, pool.workers] }

role "docker-engine-manager" {
  on = [pool.managers]
  rollout {
    batch      = 1 # managers restart one at a time
    max_failed = 1
  }
}
role "swarm-init" { on = [pool.managers] }
role "swarm-manager" {
  on = [pool.managers]
  rollout {
    batch = 1 # managers join one at a time
  }
}
role "demo-service" { on = [pool.managers] }

role "docker-engine" {
  on = [pool.workers]
  rollout {
    batch      = 2 # two workers at a time; the first failure stops the rollout
    max_failed = 1
  }
}
role "swarm-worker" { on = [pool.workers] }

role "swarm-leave" {
  on = [pool.leaving]
  rollout {
    batch = 1
  }
}
