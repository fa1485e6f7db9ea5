deployment = "demo"

pool "members" {
  count = 1
}

role "ca" {}

role "peer-url" {
  on = [pool.members]
}

role "member" {
  on = [pool.members]
  attrs = {
    "test.ca_pem" = role.ca.outputs[*].cert_pem
  }
  inputs = {
    Peers = role.ca.outputs
    Cert  = role.ca.output
  }
}
