deployment = "demo"

attrs = {
  "test.domain" = "mason.lab."
  "test.nope"   = 1
  "test.port"   = 99999999999999999999
  "test.ca_pem" = role.ca.output.cert_pem
}

pool "members" {
  nodes = ["n1", "N_2"]
  count = 3
}
