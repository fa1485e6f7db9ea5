deployment = "demo"

pool "members" {
  count = 3
  labels = { zone = "a" 
}

role "peer-url" {
  on = [pool.members]
