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

  default_tags {
    tags = merge(var.tags, {
      "swiftfleet:cluster"    = var.cluster_name
      "swiftfleet:managed-by" = "terraform"
    })
  }
}
