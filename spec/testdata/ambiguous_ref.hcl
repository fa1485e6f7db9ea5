deployment = "demo"

pool "members" {
  count = 2
}

role "ca" {}

role "peer-url" {
  on = [pool.members]
}

role "swarm-manager" {
  on = [pool.members]
}

role "swarm-worker" {
  on = [pool.members]
  attrs = {
    # swarm-manager already publishes WorkerToken as swarm.join_token.
    "swarm.join_token" = role.swarm-manager.output.addr
  }
}

role "member" {
  on = [pool.members]
  attrs = {
    # ca publishes its CertPEM as test.ca_pem (a tag), visible everywhere.
    "test.ca_pem" = role.peer-url.output.url
    # Fine: Addr is published as test.token for member.
    "test.token" = role.swarm-manager.output.addr
  }
  inputs = {
    Peers = role.peer-url.outputs
  }
}
