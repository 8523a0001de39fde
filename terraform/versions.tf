terraform {
  # 1.9: validation blocks may refer to other variables (admin_cidrs vs allow_ssh_from_anywhere) and
  # `terraform test` can apply mocked computed values at plan time (override_during = plan).
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The kit is tested with 5.100.0 (v6 changes aws_instance's network_interface block).
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  region = var.region
  # The provider retries EC2 capacity errors (HTTP 500) like any 5xx, with backoff, for many minutes at the
  # default of 25 (terraform-provider-aws #15183): a small number lets the kit's AZ failover move on.
  max_retries = var.aws_max_retries

  default_tags {
    tags = merge(var.tags, {
      "swiftfleet:cluster"    = var.cluster_name
      "swiftfleet:managed-by" = "terraform"
    })
  }
}
