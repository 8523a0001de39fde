# Security group rules, planned against a mocked AWS provider (no network, no credentials).

mock_provider "aws" {
  source          = "./tests/mocks/aws"
  override_during = plan

  override_resource {
    target = aws_security_group.cluster
    values = { id = "sg-0cluster" }
  }
}

variables {
  cluster_name      = "sgtest"
  region            = "us-east-1"
  availability_zone = "us-east-1a"
  instance_type     = "g5.xlarge"
  node_count        = 2
  admin_cidrs       = ["203.0.113.7/32", "2001:db8::/64"]
  public_key_file   = "tests/fixtures/test_key.pub"
}

run "ssh_only_from_admin_cidrs" {
  command = plan

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.ssh) == 2
    error_message = "one SSH rule per admin CIDR expected"
  }
  assert {
    condition = alltrue([
      for r in aws_vpc_security_group_ingress_rule.ssh :
      r.from_port == 22 && r.to_port == 22 && r.ip_protocol == "tcp" && r.security_group_id == "sg-0cluster"
    ])
    error_message = "SSH rules must open tcp/22 on the cluster group"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.ssh["203.0.113.7/32"].cidr_ipv4 == "203.0.113.7/32"
    error_message = "IPv4 admin CIDR must become cidr_ipv4"
  }
  assert {
    condition = (aws_vpc_security_group_ingress_rule.ssh["2001:db8::/64"].cidr_ipv6 == "2001:db8::/64"
    && aws_vpc_security_group_ingress_rule.ssh["2001:db8::/64"].cidr_ipv4 == null)
    error_message = "IPv6 admin CIDR must become cidr_ipv6"
  }
  # No other ingress rule reaches port 22 from a CIDR: the remaining rules are self-referencing.
  assert {
    condition = alltrue([
      for r in [aws_vpc_security_group_ingress_rule.rendezvous, aws_vpc_security_group_ingress_rule.self_all] :
      r.cidr_ipv4 == null && r.cidr_ipv6 == null && r.referenced_security_group_id == "sg-0cluster"
    ])
    error_message = "node-to-node ingress must reference the group itself, never a CIDR"
  }
}

run "rendezvous_and_self_traffic" {
  command = plan

  assert {
    condition = (aws_vpc_security_group_ingress_rule.rendezvous.ip_protocol == "tcp"
      && aws_vpc_security_group_ingress_rule.rendezvous.from_port == 29500
    && aws_vpc_security_group_ingress_rule.rendezvous.to_port == 29600)
    error_message = "rendezvous rule must open tcp 29500-29600"
  }
  assert {
    condition = (aws_vpc_security_group_ingress_rule.self_all.ip_protocol == "-1"
    && aws_vpc_security_group_ingress_rule.self_all.referenced_security_group_id == aws_security_group.cluster.id)
    error_message = "all-protocol ingress from the group itself is required (NCCL, EFA)"
  }
  assert {
    condition = (aws_vpc_security_group_egress_rule.self_all.ip_protocol == "-1"
      && aws_vpc_security_group_egress_rule.self_all.referenced_security_group_id == aws_security_group.cluster.id
    && aws_vpc_security_group_egress_rule.self_all.security_group_id == aws_security_group.cluster.id)
    error_message = "all-protocol egress to the group itself is required (EFA)"
  }
  assert {
    condition = (aws_vpc_security_group_egress_rule.internet.ip_protocol == "-1"
    && aws_vpc_security_group_egress_rule.internet.cidr_ipv4 == "0.0.0.0/0")
    error_message = "general egress expected"
  }
  assert {
    condition     = aws_security_group.cluster.vpc_id == "vpc-0a1b2c3d" && aws_security_group.cluster.name == "swiftfleet-sgtest"
    error_message = "the group must live in the subnet's VPC and carry the cluster's name"
  }
  assert {
    condition     = output.security_group_id == "sg-0cluster"
    error_message = "security_group_id output must be the cluster group"
  }
}

run "deploy_port_closed_without_clients" {
  command = plan

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.deploy) == 0
    error_message = "deploy port must stay closed when client_cidrs is empty"
  }
}

run "deploy_port_open_to_clients_only" {
  command = plan

  variables {
    client_cidrs = ["198.51.100.0/24"]
    deploy_port  = 8443
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.deploy) == 1
    error_message = "one deploy rule per client CIDR expected"
  }
  assert {
    condition = (aws_vpc_security_group_ingress_rule.deploy["198.51.100.0/24"].cidr_ipv4 == "198.51.100.0/24"
      && aws_vpc_security_group_ingress_rule.deploy["198.51.100.0/24"].from_port == 8443
      && aws_vpc_security_group_ingress_rule.deploy["198.51.100.0/24"].to_port == 8443
    && aws_vpc_security_group_ingress_rule.deploy["198.51.100.0/24"].ip_protocol == "tcp")
    error_message = "deploy rule must open only deploy_port to the client CIDR"
  }
}

run "ssh_from_anywhere_with_opt_in" {
  command = plan

  variables {
    admin_cidrs             = ["0.0.0.0/0"]
    allow_ssh_from_anywhere = true
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.ssh["0.0.0.0/0"].cidr_ipv4 == "0.0.0.0/0"
    error_message = "0.0.0.0/0 is accepted once allow_ssh_from_anywhere is set"
  }
}
