# Test-only drop-in: copy this file next to the module's .tf files to apply the module against
# moto's server (see tests/README.md). Never part of a real deployment.

# moto never gains capacity: few attempts keep the failover tests short. Two, not one: a transient error
# of the local stand-ins gets one retry (the test proxy closes every connection after its reply, so the SDK
# no longer reads from a reused one just closed: "use of closed network connection").
provider "aws" {
  max_retries = 2
}

resource "aws_instance" "node" {
  # moto does not implement MonitorInstances (HTTP 500, retried for minutes by the provider).
  monitoring = false
}

locals {
  # moto does not model EFA: it keys an instance's interfaces by device index (cards 1..n, all device
  # index 1, collapse into one) and reports them as plain interfaces; nodes use their own single
  # interface there, and the EFA launch template is planned by tests/nodes.tftest.hcl only.
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
