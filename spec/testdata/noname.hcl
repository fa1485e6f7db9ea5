pool "members" {
  count = 1
}

role "peer-url" {
  on = [pool.members]
}
