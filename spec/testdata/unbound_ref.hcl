deployment = "demo"

pool "workers" {
  count = 2
}

role "swarm-worker" {
  on = [pool.workers]
  attrs = {
    "swarm.join_token" = role.swarm_managr.output.worker_token
  }
}
