deployment = "demo"

pool "members" {
  count = 1
}

role "swarm-manager" {
  on = [pool.members]
}

role "swarm-worker" {
  on = [pool.members]
  attrs = {
    "swarm.join_token" = role.swarm-manager.output.worker_tokn
  }
}
