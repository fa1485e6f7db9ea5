deployment = "demo"

pool "members" {
  count = 3
}

role "membr" {
  on = [pool.members]
}
