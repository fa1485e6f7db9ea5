deployment = "demo"

role "ping" {
  attrs = {
    "test.pong" = role.pong.output.y
  }
}

role "pong" {
  attrs = {
    "test.ping" = role.ping.output.y
  }
}
