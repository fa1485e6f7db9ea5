deployment = "demo"

pool "members" {
  count = 3
}

role "peer-url" {
  on = [pool.membres]
}
