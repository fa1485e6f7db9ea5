deployment = "demo"

pool "members" {
  nodes = ["n1", "n2"]
}

pool "edge" {
  nodes = ["n2"]
}

role "peer-url" {
  on = [pool.members, pool.edge]
}
