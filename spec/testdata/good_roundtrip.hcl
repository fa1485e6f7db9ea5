deployment = "rt"

variable "token" {
  type    = string
  default = "prod-7"
}

pool "members" {
  nodes = ["n1", "n2", "n3"]
}

role "ca" {}

role "peer-url" {
  on = [pool.members]
}

role "member" {
  on = [pool.members]
  attrs = {
    "test.token"   = var.token
    "test.ca_pem"  = role.ca.output.cert_pem
    "test.timeout" = "10s"
  }
  inputs = {
    Peers = role.peer-url.outputs
  }
}

role "swarm-manager" {
  on = [pool.members]
}

role "swarm-worker" {
  on = [pool.members]
  attrs = {
    "swarm.join_token" = role.swarm-manager.output.worker_token
    "swarm.labels"     = ["a", "b"]
  }
}
