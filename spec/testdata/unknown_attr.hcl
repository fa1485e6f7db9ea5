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
    "test.tokn" = "x"
  }
}
