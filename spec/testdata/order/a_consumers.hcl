# References that name roles declared later: further down this file, and
# in b_producers.hcl, which sorts after it. Every role block's pools are
# read before any reference is checked, so this spec loads cleanly.
deployment = "order"

pool "members" {
  count = 2
}

role "swarm-worker" {
  on = [pool.members]
  attrs = {
    # agent is declared below, on the same nodes.
    "swarm.join_token" = role.agent.output.token
  }
}

role "member" {
  on = [pool.members]
  attrs = {
    # peer-url and swarm-manager are declared in b_producers.hcl.
    "test.ca_pem" = role.peer-url.output.url
    "test.token"  = role.swarm-manager.output.addr
  }
  inputs = {
    Peers = role.peer-url.outputs
  }
}

role "agent" {
  on = [pool.members]
}
