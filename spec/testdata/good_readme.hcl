# etcd.hcl
deployment = "etcd"               # keys the deployment's state

variable "members" {
  type        = number
  default     = 3
  description = "how many etcd members"
  validation {
    condition     = var.members % 2 == 1
    error_message = "An etcd cluster needs an odd number of members."
  }
}

variable "token" {
  type    = string
  default = "prod"
}

provider "lab" {                  # settings go to the registered ProviderFunc
  name = "etcd-demo"
}

service "dns" {                   # settings go to the registered ServiceFunc
  zone = "etcd.mason.lab"
}

attrs = {                         # deployment-wide attribute values
  "etcd.domain" = "etcd.mason.lab"
}

pool "members" {
  count  = var.members            # nodes members-1 … members-3; or nodes = ["n1", "n2", "n3"]
  labels = { zone = "a" }
  flavor = { vcpus = 2, ram_mib = 2048, disk_gib = 20 }
  attrs  = { "etcd.binary" = "/usr/bin/etcd" }   # node-level values for this pool's nodes
}

role "etcd-ca" {}                 # service roles run once, on no node
role "etcd-operator-cert" {}
role "etcd-bootstrap" {
  attrs = {
    "etcd.cluster_token" = format("%s-%d", var.token, var.members)
  }
}
role "etcd-verify" {}

role "etcd-peer-url" {
  on = [pool.members]
}

role "etcd-member-cert" {
  on = [pool.members]
}

role "etcd-member" {
  on = [pool.members]
  inputs = {
    Peers = role.etcd-peer-url.outputs   # every member's PeerURL output
  }
  rollout {
    batch      = 1                # one member at a time
    max_failed = 1                # stop the rollout at the first failure
  }
}
