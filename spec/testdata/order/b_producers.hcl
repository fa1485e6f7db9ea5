# The producers the references in a_consumers.hcl name.
pool "managers" {
  nodes = ["m1"]
}

role "peer-url" {
  on = [pool.members]
}

role "swarm-manager" {
  on = [pool.managers]
}
