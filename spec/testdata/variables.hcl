deployment = "demo"

variable "members" {
  type    = number
  default = 4
  validation {
    condition     = var.members % 2 == 1
    error_message = "An etcd cluster needs an odd number of members."
  }
}

variable "token" {
  type = string
}

variable "zones" {
  type    = list(string)
  default = "a"
}

pool "members" {
  count = var.membrs
}
