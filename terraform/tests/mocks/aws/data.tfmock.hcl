# Shared by every *.tftest.hcl (mock_provider "aws" { source = "./tests/mocks/aws" }): the data every plan
# reads. A file's own override blocks in its mock_provider take precedence (nodes.tftest.hcl: a p4d).

override_data {
  target = data.aws_ssm_parameter.ami
  values = { insecure_value = "ami-0123456789abcdef0" }
}

override_data {
  target = data.aws_subnet.node
  values = { id = "subnet-0a1b2c3d", vpc_id = "vpc-0a1b2c3d", availability_zone = "us-east-1a" }
}

# A g5.xlarge: one GPU, no EFA.
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

override_data {
  target = data.aws_partition.current
  values = { partition = "aws", dns_suffix = "amazonaws.com" }
}
