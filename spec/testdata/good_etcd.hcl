# The etcd example's deployment (examples/etcd/etcd.Deployment) as a spec.
deployment = "etcd"

variable "members" {
  type    = list(string)
  default = ["n1", "n2", "n3"]
}

pool "members" {
  nodes = var.members
}

role "etcd-ca" {}
role "etcd-operator-cert" {}
role "etcd-bootstrap" {}
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
    Peers = role.etcd-peer-url.outputs
  }
}
