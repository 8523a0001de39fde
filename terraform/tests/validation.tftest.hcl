# Bad input is refused by the variables' validation blocks before any AWS call.

mock_provider "aws" {
  source = "./tests/mocks/aws"
}

variables {
  cluster_name      = "valtest"
  region            = "us-east-1"
  availability_zone = "us-east-1a"
  instance_type     = "g5.xlarge"
  node_count        = 2
  admin_cidrs       = ["203.0.113.7/32"]
  public_key_file   = "tests/fixtures/test_key.pub"
}

run "valid_input_plans" {
  command = plan

  assert {
    condition     = length(aws_instance.node) == 2
    error_message = "the baseline input must plan two nodes"
  }
}

run "deploy_port_in_staging_range_refused" {
  command = plan
  variables {
    deploy_port = 29650
  }
  expect_failures = [var.deploy_port]
}

run "ssh_from_anywhere_refused_without_opt_in" {
  command = plan
  variables {
    admin_cidrs = ["203.0.113.7/32", "0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}

run "ipv6_anywhere_refused_without_opt_in" {
  command = plan
  variables {
    admin_cidrs = ["::/0"]
  }
  expect_failures = [var.admin_cidrs]
}

run "empty_admin_cidrs_refused" {
  command = plan
  variables {
    admin_cidrs = []
  }
  expect_failures = [var.admin_cidrs]
}

run "bad_admin_cidr_refused" {
  command = plan
  variables {
    admin_cidrs = ["203.0.113.300/32"]
  }
  expect_failures = [var.admin_cidrs]
}

run "bad_client_cidr_refused" {
  command = plan
  variables {
    client_cidrs = ["office"]
  }
  expect_failures = [var.client_cidrs]
}

run "zero_nodes_refused" {
  command = plan
  variables {
    node_count = 0
  }
  expect_failures = [var.node_count]
}

run "too_many_nodes_refused" {
  command = plan
  variables {
    node_count = 65
  }
  expect_failures = [var.node_count]
}

run "fractional_nodes_refused" {
  command = plan
  variables {
    node_count = 1.5
  }
  expect_failures = [var.node_count]
}

run "uppercase_cluster_name_refused" {
  command = plan
  variables {
    cluster_name = "MyCluster"
  }
  expect_failures = [var.cluster_name]
}

run "long_cluster_name_refused" {
  command = plan
  variables {
    cluster_name = "a23456789012345678901234567890123"
  }
  expect_failures = [var.cluster_name]
}

run "ttl_zero_refused" {
  command = plan
  variables {
    ttl_hours = 0
  }
  expect_failures = [var.ttl_hours]
}

run "ttl_over_a_week_refused" {
  command = plan
  variables {
    ttl_hours = 169
  }
  expect_failures = [var.ttl_hours]
}

run "small_root_volume_refused" {
  command = plan
  variables {
    root_volume_gib = 49
  }
  expect_failures = [var.root_volume_gib]
}

run "zone_outside_region_refused" {
  command = plan
  variables {
    availability_zone = "eu-west-1a"
  }
  expect_failures = [var.availability_zone]
}

run "deploy_port_in_rendezvous_range_refused" {
  command = plan
  variables {
    deploy_port = 29500
  }
  expect_failures = [var.deploy_port]
}

run "missing_public_key_refused" {
  command = plan
  variables {
    public_key_file = "tests/fixtures/absent.pub"
  }
  expect_failures = [var.public_key_file]
}

run "bad_subnet_id_refused" {
  command = plan
  variables {
    subnet_id = "my-subnet"
  }
  expect_failures = [var.subnet_id]
}

run "bad_ami_id_refused" {
  command = plan
  variables {
    ami_id = "ubuntu"
  }
  expect_failures = [var.ami_id]
}

run "bad_capacity_reservation_id_refused" {
  command = plan
  variables {
    capacity_reservation_id = "cr-XYZ"
  }
  expect_failures = [var.capacity_reservation_id]
}

run "capacity_block_without_reservation_refused" {
  command = plan
  variables {
    capacity_block = true
  }
  expect_failures = [var.capacity_block]
}

run "spot_with_reservation_refused" {
  command = plan
  variables {
    spot                    = true
    capacity_reservation_id = "cr-0123456789abcdef0"
  }
  expect_failures = [var.spot]
}

run "placement_group_with_reservation_refused" {
  command = plan
  variables {
    placement_group         = true
    capacity_reservation_id = "cr-0123456789abcdef0"
  }
  expect_failures = [var.placement_group]
}
