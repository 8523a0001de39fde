# S3 access of the nodes (iam.tf): none by default; a role of least privilege for s3_read/s3_write; or an
# existing instance profile. Planned against the mocked provider.

mock_provider "aws" {
  source          = "./tests/mocks/aws"
  override_during = plan

  # A mocked value stands in only where the configuration sets none: "" means no profile was configured.
  mock_resource "aws_instance" {
    override_during = plan
    defaults        = { iam_instance_profile = "" }
  }
  mock_resource "aws_iam_instance_profile" {
    override_during = plan
    defaults        = { arn = "arn:aws:iam::123456789012:instance-profile/swiftfleet-iamtest-us-east-1-node" }
  }
  override_data {
    target = data.aws_iam_instance_profile.given[0]
    values = { name = "team-s3-reader", arn = "arn:aws:iam::123456789012:instance-profile/team-s3-reader", role_name = "team-s3-reader" }
  }
}

variables {
  cluster_name      = "iamtest"
  region            = "us-east-1"
  availability_zone = "us-east-1a"
  instance_type     = "g5.xlarge"
  node_count        = 2
  admin_cidrs       = ["203.0.113.7/32"]
  public_key_file   = "tests/fixtures/test_key.pub"
}

run "no_access_by_default" {
  command = plan

  assert {
    condition     = length(aws_iam_role.node) + length(aws_iam_role_policy.s3) + length(aws_iam_instance_profile.node) == 0
    error_message = "without s3_read/s3_write no IAM role, policy or instance profile may be made"
  }
  assert {
    condition     = length(data.aws_iam_instance_profile.given) == 0
    error_message = "no instance profile may be looked up without instance_profile"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.iam_instance_profile == ""])
    error_message = "nodes must carry no instance profile by default"
  }
  assert {
    condition     = output.instance_profile_name == null && output.instance_profile_arn == null
    error_message = "the profile outputs must be null by default"
  }
}

run "read_and_write_prefixes" {
  command = plan
  variables {
    s3_read  = ["s3://models-bucket/models/qwen", "s3://datasets-bucket/", "s3://shared-bucket/in/"]
    s3_write = ["s3://shared-bucket/out/run1"]
  }

  assert {
    condition     = aws_iam_role.node[0].name == "swiftfleet-iamtest-us-east-1-node"
    error_message = "the role is named after cluster and region (IAM names are account-wide)"
  }
  assert {
    condition = jsondecode(aws_iam_role.node[0].assume_role_policy).Statement == [{
      Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole"
    }]
    error_message = "only EC2 may assume the nodes' role"
  }
  # The whole document, statement by statement: nothing more than this may be granted.
  assert {
    condition = aws_iam_role_policy.s3[0].policy == jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          Sid       = "ListBucket0", Effect = "Allow", Action = ["s3:ListBucket"],
          Resource  = ["arn:aws:s3:::models-bucket"],
          Condition = { StringLike = { "s3:prefix" = ["models/qwen", "models/qwen/*"] } }
        },
        # The whole bucket was granted: listing it needs no condition.
        { Sid = "ListBucket1", Effect = "Allow", Action = ["s3:ListBucket"], Resource = ["arn:aws:s3:::datasets-bucket"] },
        {
          Sid       = "ListBucket2", Effect = "Allow", Action = ["s3:ListBucket"],
          Resource  = ["arn:aws:s3:::shared-bucket"],
          Condition = { StringLike = { "s3:prefix" = ["in", "in/*", "out/run1", "out/run1/*"] } }
        },
        {
          Sid = "ReadObjects", Effect = "Allow", Action = ["s3:GetObject"],
          Resource = [
            "arn:aws:s3:::models-bucket/models/qwen", "arn:aws:s3:::models-bucket/models/qwen/*",
            "arn:aws:s3:::datasets-bucket/*",
            "arn:aws:s3:::shared-bucket/in", "arn:aws:s3:::shared-bucket/in/*",
            "arn:aws:s3:::shared-bucket/out/run1", "arn:aws:s3:::shared-bucket/out/run1/*",
          ]
        },
        {
          Sid      = "WriteObjects", Effect = "Allow", Action = ["s3:PutObject", "s3:AbortMultipartUpload"],
          Resource = ["arn:aws:s3:::shared-bucket/out/run1", "arn:aws:s3:::shared-bucket/out/run1/*"]
        },
      ]
    })
    error_message = "unexpected S3 policy: ${aws_iam_role_policy.s3[0].policy}"
  }
  assert {
    condition = !anytrue([
      for s in jsondecode(aws_iam_role_policy.s3[0].policy).Statement :
      anytrue([for a in s.Action : strcontains(a, "Delete") || strcontains(a, "*")])
    ])
    error_message = "no delete and no wildcard actions"
  }
  assert {
    condition     = aws_iam_instance_profile.node[0].role == aws_iam_role.node[0].name
    error_message = "the instance profile must carry the nodes' role"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.iam_instance_profile == "swiftfleet-iamtest-us-east-1-node"])
    error_message = "every node must carry the made instance profile"
  }
  assert {
    condition = (output.instance_profile_name == "swiftfleet-iamtest-us-east-1-node"
    && output.instance_profile_arn == "arn:aws:iam::123456789012:instance-profile/swiftfleet-iamtest-us-east-1-node")
    error_message = "the outputs must name the made profile"
  }
}

run "read_only_grants_no_write" {
  command = plan
  variables {
    s3_read = ["s3://models-bucket/models/qwen/"]
  }

  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.s3[0].policy).Statement : s.Sid] == ["ListBucket0", "ReadObjects"]
      && jsondecode(aws_iam_role_policy.s3[0].policy).Statement[1].Resource == [
        "arn:aws:s3:::models-bucket/models/qwen", "arn:aws:s3:::models-bucket/models/qwen/*"
      ]
    )
    error_message = "read-only access: list and get on the prefix, nothing else: ${aws_iam_role_policy.s3[0].policy}"
  }
}

run "gov_cloud_partition" {
  command = plan
  variables {
    region            = "us-gov-west-1"
    availability_zone = "us-gov-west-1a"
    s3_write          = ["s3://out-bucket/runs"]
  }
  override_data {
    target = data.aws_partition.current
    values = { partition = "aws-us-gov", dns_suffix = "amazonaws.com" }
  }

  assert {
    condition     = jsondecode(aws_iam_role_policy.s3[0].policy).Statement[0].Resource == ["arn:aws-us-gov:s3:::out-bucket"]
    error_message = "ARNs must carry the region's partition"
  }
}

run "existing_instance_profile" {
  command = plan
  variables {
    instance_profile = "team-s3-reader"
  }

  assert {
    condition     = length(aws_iam_role.node) + length(aws_iam_instance_profile.node) == 0
    error_message = "a given instance profile replaces the made role and profile"
  }
  assert {
    condition     = alltrue([for n in aws_instance.node : n.iam_instance_profile == "team-s3-reader"])
    error_message = "every node must carry the given instance profile"
  }
  assert {
    condition     = output.instance_profile_arn == "arn:aws:iam::123456789012:instance-profile/team-s3-reader"
    error_message = "the ARN output comes from the looked-up profile"
  }
}

run "profile_and_prefixes_refused" {
  command = plan
  variables {
    instance_profile = "team-s3-reader"
    s3_read          = ["s3://models-bucket/models"]
  }
  expect_failures = [var.instance_profile]
}

run "bad_profile_name_refused" {
  command = plan
  variables {
    instance_profile = "no spaces/slashes"
  }
  expect_failures = [var.instance_profile]
}

run "wildcard_prefix_refused" {
  command = plan
  variables {
    s3_read = ["s3://models-bucket/models/*"]
  }
  expect_failures = [var.s3_read]
}

run "bad_bucket_refused" {
  command = plan
  variables {
    s3_write = ["s3://Not_A_Bucket/out"]
  }
  expect_failures = [var.s3_write]
}

run "not_an_s3_uri_refused" {
  command = plan
  variables {
    s3_read = ["https://models-bucket.s3.amazonaws.com/models"]
  }
  expect_failures = [var.s3_read]
}

run "empty_key_part_refused" {
  command = plan
  variables {
    s3_write = ["s3://out-bucket//runs"]
  }
  expect_failures = [var.s3_write]
}

run "ip_address_bucket_refused" {
  command = plan
  variables {
    s3_read = ["s3://192.168.5.4/models"]
  }
  expect_failures = [var.s3_read]
}
