# Test-only drop-in: copy this file next to the module's .tf files to apply the module against
# moto's server (see tests/README.md). Never part of a real deployment.

# moto never gains capacity: few attempts keep the failover tests short. Two, not one: the SDK reuses
# keep-alive connections to the test proxy and now and then reads from one just closed ("use of closed
# network connection"), which one retry absorbs.
provider "aws" {
  max_retries = 2
}

resource "aws_instance" "node" {
  # moto does not implement MonitorInstances (HTTP 500, retried for minutes by the provider).
  monitoring = false
}

locals {
  # moto keeps a terminated instance's network interfaces attached and refuses to detach the last
  # one, so destroying pre-made EFA interfaces fails there; nodes use their own single interface.
  efa_count = 0
}

# moto drops the description of rules that reference a group, so every later apply would try to
# set it again with ModifySecurityGroupRules, which moto refuses for such rules.
resource "aws_vpc_security_group_ingress_rule" "rendezvous" {
  description = null
}

resource "aws_vpc_security_group_ingress_rule" "self_all" {
  description = null
}

resource "aws_vpc_security_group_egress_rule" "self_all" {
  description = null
}
