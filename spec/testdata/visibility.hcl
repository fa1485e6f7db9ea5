deployment = "demo"

pool "members" {
  count = 2
}

pool "clients" {
  nodes = ["c1"]
}

role "peer-url" {
  on = [pool.members]
}

role "swarm-manager" {
  on = [pool.members]
}

role "agent" {
  on = [pool.members]
}

role "swarm-worker" {
  on = [pool.clients]
  attrs = {
    "swarm.join_token" = role.agent.output.token
  }
}

role "member" {
  on = [pool.members]
  attrs = {
    "test.ca_pem" = format("%s", role.peer-url.output.url)
    "test.token"  = role.swarm-manager.output.worker_token
  }
  inputs = {
    Peers = role.peer-url.output
  }
}
