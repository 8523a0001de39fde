# The optional shared file system (shared_fs.tf), planned against a mocked AWS provider: none by default;
# with "efs" one encrypted file system and one mount target in the cluster's subnet and security group.

mock_provider "aws" {
  source          = "./tests/mocks/aws"
  override_during = plan

  # Values AWS computes, made known at plan time so that the assertions can compare them.
  mock_resource "aws_security_group" {
    override_during = plan
    defaults        = { id = "sg-0cluster" }
  }
  mock_resource "aws_efs_file_system" {
    override_during = plan
    defaults        = { id = "fs-0shared", dns_name = "fs-0shared.efs.us-east-1.amazonaws.com" }
  }
}

variables {
  cluster_name      = "fstest"
  region            = "us-east-1"
  availability_zone = "us-east-1a"
  instance_type     = "g5.xlarge"
  node_count        = 2
  admin_cidrs       = ["203.0.113.7/32"]
  public_key_file   = "tests/fixtures/test_key.pub"
}

run "none_by_default" {
  command = plan

  assert {
    condition     = var.shared_fs == "none"
    error_message = "shared_fs must default to none"
  }
  assert {
    condition     = length(aws_efs_file_system.shared) == 0 && length(aws_efs_mount_target.shared) == 0
    error_message = "no file system and no mount target without shared_fs"
  }
  assert {
    condition     = output.shared_fs == null
    error_message = "the shared_fs output must be null without a shared file system"
  }
}

run "efs" {
  command = plan

  variables {
    shared_fs = "efs"
  }

  assert {
    condition     = length(aws_efs_file_system.shared) == 1 && aws_efs_file_system.shared[0].encrypted == true
    error_message = "one encrypted EFS file system expected"
  }
  assert {
    condition = (aws_efs_file_system.shared[0].throughput_mode == "elastic"
    && aws_efs_file_system.shared[0].creation_token == "swiftfleet-fstest-shared")
    error_message = "elastic throughput and a creation token of the cluster's own expected"
  }
  assert {
    # The cluster tag and extra tags come from the provider's default_tags (the mock does not merge them).
    condition     = aws_efs_file_system.shared[0].tags == tomap({ Name = "fstest-shared" })
    error_message = "the file system must carry the cluster's Name for it"
  }
  assert {
    condition = (
      [for p in aws_efs_file_system.shared[0].lifecycle_policy : p.transition_to_ia if p.transition_to_ia != null] == ["AFTER_7_DAYS"]
      && [for p in aws_efs_file_system.shared[0].lifecycle_policy : p.transition_to_primary_storage_class if p.transition_to_primary_storage_class != null] == ["AFTER_1_ACCESS"]
    )
    error_message = "cold files move to Infrequent Access after 7 days and back on their first read"
  }
  assert {
    condition     = length(aws_efs_mount_target.shared) == 1
    error_message = "exactly one mount target expected (the cluster lives in one subnet)"
  }
  assert {
    condition = (aws_efs_mount_target.shared[0].file_system_id == "fs-0shared"
      && aws_efs_mount_target.shared[0].subnet_id == "subnet-0a1b2c3d"
    && aws_efs_mount_target.shared[0].security_groups == toset(["sg-0cluster"]))
    error_message = "the mount target must be in the cluster subnet with the cluster security group only"
  }
  assert {
    condition = output.shared_fs == {
      type    = "efs"
      address = "fs-0shared.efs.us-east-1.amazonaws.com"
      id      = "fs-0shared"
    }
    error_message = "the shared_fs output must name the type, the file system's DNS name and its id"
  }
  # NFS reaches the mount target through the group's own all-traffic rule; nothing opens 2049 to a CIDR.
  assert {
    condition = alltrue([
      for r in concat(values(aws_vpc_security_group_ingress_rule.ssh), values(aws_vpc_security_group_ingress_rule.deploy)) :
      r.to_port != 2049 && r.from_port != 2049
    ])
    error_message = "no CIDR rule may open NFS (2049)"
  }
}

run "efs_with_an_efa_type" {
  command = plan

  variables {
    shared_fs     = "efs"
    instance_type = "p4d.24xlarge"
  }

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

  # With EFA the nodes' interfaces come from the launch template: the mount target still shares their group.
  assert {
    condition = (aws_efs_mount_target.shared[0].security_groups == aws_launch_template.efa[0].network_interfaces[0].security_groups
    && aws_efs_mount_target.shared[0].subnet_id == aws_launch_template.efa[0].network_interfaces[0].subnet_id)
    error_message = "the mount target must be in the EFA interfaces' subnet and group"
  }
}

run "bad_value_refused" {
  command = plan

  variables {
    shared_fs = "nfs"
  }

  expect_failures = [var.shared_fs]
}
