deployment = "demo"

pool "members" {
  count = 1
}

role "peer-url" {
  on = [pool.members]
}

role "member" {
  on = [pool.members]
  attrs = {
    "test.port"    = "2379"
    "test.timeout" = 10
    "test.token"   = ["a", "b"]
  }
}
