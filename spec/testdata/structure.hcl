deployment = "demo"

provider "vsphere" {
  url = "https://vc.example"
}

pool "members" {
  count  = -1
  flavor = { cpus = 2 }
}

pool "members" {
  count = 1
}

pool "empty" {
}

role "member" {
}

role "ca" {
  on = [pool.members]
  rollout {
    max_failed_fraction = 2
  }
}

service "ntp" {
}

network "lab" {
}
