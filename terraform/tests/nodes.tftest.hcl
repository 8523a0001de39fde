# Nodes: hardening, EFA layout, public addresses, placement, spot, tags and outputs, planned against
# a mocked AWS provider. The default instance-type data below is a p4d.24xlarge (4 EFA network cards).

mock_provider "aws" {
  source          = "./tests/mocks/aws"
  override_during = plan

  override_data {
    target = data.aws_ec2_instance_type.node
    values = {
      efa_supported                  = true
      efa_maximum_interfaces         = 4
      maximum_network_cards          = 4
      supported_placement_strategies = ["cluster", "partition", "spread"]
      gpus                           = [{ count = 8, manufacturer = "NVIDIA", memory_size = 40960, name = "A100" }]
    }
  }

  # Values AWS computes, made known at plan time so that the assertions can compare them.
  mock_resource "aws_instance" {
    override_during = plan
    defaults        = { id = "i-0mock", private_ip = "10.0.0.10", public_ip = "198.51.100.10", primary_network_interface_id = "eni-0mock" }
  }
  mock_resource "aws_eip" {
    override_during = plan
    defaults        = { public_ip = "192.0.2.10" }
  }
  mock_resource "aws_launch_template" {
    override_during = plan
    defaults        = { id = "lt-0efa", latest_version = 1 }
  }
  mock_resource "aws_security_group" {
    override_during = plan
    defaults        = { id = "sg-0cluster" }
  }
  # Distinct primary interfaces (the ones EC2 makes at launch), for the EIP assertions.
  override_resource {
    target = aws_instance.node[0]
    values = { id = "i-0node0", private_ip = "10.0.0.10", public_ip = "198.51.100.10", primary_network_interface_id = "eni-0node0card0" }
  }
  override_resource {
    target = aws_instance.node[1]
    values = { id = "i-0node1", private_ip = "10.0.0.11", public_ip = "198.51.100.10", primary_network_interface_id = "eni-0node1card0" }
  }
  override_resource {
    target = aws_instance.node[2]
    values = { id = "i-0node2", private_ip = "10.0.0.12", public_ip = "198.51.100.10", primary_network_interface_id = "eni-0node2card0" }
  }
}

variables {
  cluster_name      = "nodetest"
  region            = "us-east-1"
  availability_zone = "us-east-1a"
  instance_type     = "p4d.24xlarge"
  node_count        = 3
  admin_cidrs       = ["203.0.113.7/32"]
  public_key_file   = "tests/fixtures/test_key.pub"
}

run "hardening" {
  command = plan

  variables {
    root_volume_gib = 500
  }

  assert {
    condition     = alltrue([for n in aws_instance.node : n.metadata_options[0].http_tokens == "required"])
    error_message = "IMDSv2 must be required on every node"
  }
  assert {
    condition = alltrue([for n in aws_instance.node :
      n.root_block_device[0].encrypted == true && n.root_block_device[0].volume_type == "gp3"
    && n.root_block_device[0].volume_size == 500])
    error_message = "root volume must be an encrypted gp3 of root_volume_gib"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.monitoring == true && n.ebs_optimized == true])
    error_message = "detailed monitoring and EBS optimization expected"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.instance_initiated_shutdown_behavior == "terminate"])
    error_message = "a node that powers itself off must terminate"
  }
  assert {
    condition = alltrue([for n in aws_instance.node :
      strcontains(n.user_data, "date -d '+12 hours'") && strcontains(n.user_data, "swiftfleet-ttl.timer")
    ])
    error_message = "user_data must arm the TTL timer with the default 12 h"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.ami == "ami-0123456789abcdef0"])
    error_message = "AMI must come from the SSM parameter"
  }
  assert {
    condition     = aws_key_pair.cluster.key_name == "swiftfleet-nodetest" && output.key_name == "swiftfleet-nodetest"
    error_message = "key pair named after the cluster expected"
  }
  assert {
    condition     = startswith(aws_key_pair.cluster.public_key, "ssh-ed25519 ")
    error_message = "key pair must carry the public key file's content"
  }
}

run "efa_layout_for_an_efa_type" {
  command = plan

  assert {
    condition     = output.efa_interfaces_per_node == 4 && length(aws_launch_template.efa) == 1
    error_message = "p4d: one launch template with the 4 EFA interfaces of a node expected"
  }
  assert {
    condition = (
      [for ni in aws_launch_template.efa[0].network_interfaces : ni.network_card_index] == [0, 1, 2, 3]
      && [for ni in aws_launch_template.efa[0].network_interfaces : ni.device_index] == [0, 1, 1, 1]
      && [for ni in aws_launch_template.efa[0].network_interfaces : ni.interface_type] == ["efa", "efa-only", "efa-only", "efa-only"]
    )
    error_message = "one interface per card: efa with device 0 on card 0, efa-only with device 1 elsewhere"
  }
  assert {
    condition = alltrue([for ni in aws_launch_template.efa[0].network_interfaces :
      ni.security_groups == toset([aws_security_group.cluster.id]) && ni.subnet_id == "subnet-0a1b2c3d"
    ])
    error_message = "every EFA interface must be in the cluster group and subnet"
  }
  assert {
    condition = alltrue([for n in aws_instance.node :
      n.launch_template[0].id == "lt-0efa" && n.launch_template[0].version == "1"
    ])
    error_message = "every node launches from the EFA template (subnet and group come with its interfaces)"
  }
  assert {
    condition = (aws_launch_template.efa[0].tag_specifications[0].resource_type == "network-interface"
    && aws_launch_template.efa[0].tag_specifications[0].tags["swiftfleet:cluster"] == "nodetest")
    error_message = "the interfaces EC2 makes must carry the cluster tag (the sweep finds them by it)"
  }
}

run "efa_interfaces_are_deleted_with_their_node" {
  command = plan

  assert {
    condition     = alltrue([for ni in aws_launch_template.efa[0].network_interfaces : ni.delete_on_termination == "true"])
    error_message = "every EFA interface must be deleted when its node terminates"
  }
}

run "eip_on_primary_interface_when_several_interfaces" {
  command = plan

  assert {
    condition = length(aws_eip.node) == 3 && alltrue([for rank in range(3) :
      aws_eip.node[rank].network_interface == "eni-0node${rank}card0" && aws_eip.node[rank].domain == "vpc"
    ])
    error_message = "each node's EIP must sit on its primary (card 0) interface"
  }
  assert {
    condition     = [for n in output.nodes : n.public_ip] == ["192.0.2.10", "192.0.2.10", "192.0.2.10"]
    error_message = "public_ip output must be the EIP"
  }
}

run "no_efa_for_a_non_efa_type" {
  command = plan

  variables {
    instance_type = "g5.xlarge"
  }

  override_data {
    target = data.aws_ec2_instance_type.node
    values = {
      efa_supported                  = false
      efa_maximum_interfaces         = 0
      maximum_network_cards          = 1
      supported_placement_strategies = ["cluster", "partition", "spread"]
      gpus                           = [{ count = 1, manufacturer = "NVIDIA", memory_size = 22888, name = "A10G" }]
    }
  }

  assert {
    condition     = output.efa_interfaces_per_node == 0 && length(aws_launch_template.efa) == 0
    error_message = "no EFA interface (and no launch template) on a type without EFA"
  }
  assert {
    condition     = length(aws_eip.node) == 0
    error_message = "a single automatic interface needs no EIP"
  }
  assert {
    condition = alltrue([for n in aws_instance.node :
      length(n.launch_template) == 0 && n.subnet_id == "subnet-0a1b2c3d"
      && n.associate_public_ip_address == true && n.vpc_security_group_ids == toset([aws_security_group.cluster.id])
    ])
    error_message = "without EFA the instance gets subnet, group and an automatic public IP itself"
  }
  assert {
    condition     = [for n in output.nodes : n.public_ip] == ["198.51.100.10", "198.51.100.10", "198.51.100.10"]
    error_message = "public_ip output must be the instance's own public IP"
  }
  assert {
    condition     = output.gpu_count == 1 && output.gpu_memory_mib == 22888
    error_message = "GPU facts must come from the instance-type data"
  }
}

run "single_efa_type_gets_one_efa_and_an_eip" {
  command = plan

  variables {
    instance_type = "g5.12xlarge"
    node_count    = 1
  }

  override_data {
    target = data.aws_ec2_instance_type.node
    values = {
      efa_supported                  = true
      efa_maximum_interfaces         = 1
      maximum_network_cards          = 1
      supported_placement_strategies = ["cluster", "partition", "spread"]
      gpus                           = [{ count = 4, manufacturer = "NVIDIA", memory_size = 22888, name = "A10G" }]
    }
  }

  assert {
    condition = (length(aws_launch_template.efa[0].network_interfaces) == 1
    && aws_launch_template.efa[0].network_interfaces[0].interface_type == "efa")
    error_message = "g5.12xlarge: one efa interface"
  }
  assert {
    condition     = length(aws_eip.node) == 1
    error_message = "a pre-made interface gets no automatic public IP: EIP expected"
  }
}

run "placement_group_on_where_supported" {
  command = plan

  assert {
    condition     = length(aws_placement_group.cluster) == 1 && aws_placement_group.cluster[0].strategy == "cluster"
    error_message = "cluster placement group expected by default on a type that supports it"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.placement_group == "swiftfleet-nodetest"])
    error_message = "every node must be in the placement group"
  }
  assert {
    condition     = output.placement_group == "swiftfleet-nodetest"
    error_message = "placement_group output must name the group"
  }
}

run "placement_group_off_when_unsupported" {
  command = plan

  override_data {
    target = data.aws_ec2_instance_type.node
    values = {
      efa_supported                  = false
      efa_maximum_interfaces         = 0
      maximum_network_cards          = 1
      supported_placement_strategies = ["partition", "spread"]
      gpus                           = [{ count = 1, manufacturer = "NVIDIA", memory_size = 22888, name = "A10G" }]
    }
  }

  assert {
    condition     = length(aws_placement_group.cluster) == 0 && output.placement_group == null
    error_message = "no placement group on a type without the cluster strategy"
  }
}

run "placement_group_off_by_choice" {
  command = plan

  variables {
    placement_group = false
  }

  assert {
    condition     = length(aws_placement_group.cluster) == 0 && output.placement_group == null
    error_message = "placement_group = false must leave the nodes out of any group"
  }
}

run "on_demand_by_default" {
  command = plan

  assert {
    condition     = alltrue([for n in aws_instance.node : length(n.instance_market_options) == 0])
    error_message = "on-demand nodes expected without spot"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : length(n.capacity_reservation_specification) == 0])
    error_message = "without capacity_reservation_id the nodes must not target any reservation"
  }
}

run "spot" {
  command = plan

  variables {
    spot      = true
    ttl_hours = 48
  }

  assert {
    condition = alltrue([for n in aws_instance.node :
      n.instance_market_options[0].market_type == "spot"
      && n.instance_market_options[0].spot_options[0].spot_instance_type == "one-time"
    ])
    error_message = "spot = true must request one-time spot instances"
  }
  assert {
    condition     = strcontains(aws_instance.node[0].user_data, "date -d '+48 hours'")
    error_message = "ttl_hours must reach the TTL timer"
  }
}

run "tags_and_outputs_by_rank" {
  command = plan

  variables {
    tags = { team = "ml" }
  }

  assert {
    condition = alltrue([for rank, n in aws_instance.node :
      n.tags["Name"] == "nodetest-node${rank}" && n.tags["swiftfleet:rank"] == tostring(rank)
      && n.tags["swiftfleet:cluster"] == "nodetest"
    ])
    error_message = "every node must carry Name, swiftfleet:cluster and swiftfleet:rank"
  }
  assert {
    condition     = [for n in output.nodes : n.rank] == [0, 1, 2] && [for n in output.nodes : n.name] == ["nodetest-node0", "nodetest-node1", "nodetest-node2"]
    error_message = "nodes output must be ordered by rank"
  }
  assert {
    condition = alltrue([for rank, n in output.nodes :
      n.instance_id == aws_instance.node[rank].id && n.private_ip == aws_instance.node[rank].private_ip
      && n.ssh_user == "ubuntu" && n.availability_zone == aws_instance.node[rank].availability_zone
    ])
    error_message = "nodes output must describe each instance"
  }
  assert {
    condition     = output.master_addr == aws_instance.node[0].private_ip
    error_message = "master_addr must be rank 0's private IP"
  }
  assert {
    condition     = output.gpu_count == 8 && output.gpu_memory_mib == 40960
    error_message = "p4d: 8 GPUs of 40960 MiB"
  }
}

run "explicit_ami_skips_ssm" {
  command = plan

  variables {
    ami_id = "ami-0fedcba9876543210"
  }

  assert {
    condition     = length(data.aws_ssm_parameter.ami) == 0 && aws_instance.node[0].ami == "ami-0fedcba9876543210"
    error_message = "ami_id must be used as given, without reading SSM"
  }
}

run "subnet_in_another_zone_is_refused" {
  command = plan

  variables {
    subnet_id = "subnet-0e0e0e0e"
  }

  override_data {
    target = data.aws_subnet.node
    values = { id = "subnet-0e0e0e0e", vpc_id = "vpc-0a1b2c3d", availability_zone = "us-east-1b" }
  }

  expect_failures = [aws_instance.node]
}

run "targeted_capacity_reservation" {
  command = plan

  variables {
    capacity_reservation_id = "cr-0123456789abcdef0"
  }

  assert {
    condition = alltrue([for n in aws_instance.node :
      n.capacity_reservation_specification[0].capacity_reservation_target[0].capacity_reservation_id == "cr-0123456789abcdef0"
    ])
    error_message = "every node must target the capacity reservation"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : length(n.instance_market_options) == 0])
    error_message = "an On-Demand Capacity Reservation is used by on-demand launches (no market options)"
  }
  assert {
    condition = (length(aws_placement_group.cluster) == 0 && output.placement_group == null
    && alltrue([for n in aws_instance.node : n.placement_group != "swiftfleet-nodetest"]))
    error_message = "no placement group with a targeted reservation, although the type supports the cluster strategy"
  }
  assert {
    condition     = length(aws_eip.node) == 3 && length(aws_launch_template.efa) == 1
    error_message = "EFA interfaces and EIPs as without a reservation"
  }
}

run "capacity_block_for_ml" {
  command = plan

  variables {
    capacity_reservation_id = "cr-0fedcba9876543210"
    capacity_block          = true
    placement_group         = false
  }

  assert {
    condition = alltrue([for n in aws_instance.node :
      n.instance_market_options[0].market_type == "capacity-block" && length(n.instance_market_options[0].spot_options) == 0
      && n.capacity_reservation_specification[0].capacity_reservation_target[0].capacity_reservation_id == "cr-0fedcba9876543210"
    ])
    error_message = "a Capacity Block launches with market type capacity-block into its reservation, without spot options"
  }
  assert {
    condition     = length(aws_placement_group.cluster) == 0
    error_message = "no placement group with a Capacity Block"
  }
}
