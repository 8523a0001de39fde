# Inputs read from AWS: AMI, subnet and the instance type's GPU/EFA/placement facts.

data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0
  name  = var.ami_ssm_parameter
}

# The given subnet, or the default subnet of the zone in the default VPC.
data "aws_subnet" "node" {
  id                = var.subnet_id
  availability_zone = var.subnet_id == null ? var.availability_zone : null
  default_for_az    = var.subnet_id == null ? true : null
}

data "aws_ec2_instance_type" "node" {
  instance_type = var.instance_type
}

locals {
  name_prefix = "swiftfleet-${var.cluster_name}"
  # insecure_value: an AMI id is no secret, and `value` would make every node attribute sensitive.
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.ami[0].insecure_value

  type_facts = data.aws_ec2_instance_type.node
  gpu_count  = sum(concat([0], [for g in local.type_facts.gpus : g.count]))
  # Memory of one GPU (all GPUs of an instance type are the same model).
  gpu_memory_mib = max(concat([0], [for g in local.type_facts.gpus : g.memory_size])...)

  # One EFA per network card, as many as the type allows: card 0 carries an "efa" interface (EFA +
  # ENA: the node's IP address), every other card an "efa-only" one (no IP address used up).
  # p5 gets the same layout; AWS's variant with an IP-capable "efa" on every fourth card only adds
  # ENA (TCP) bandwidth, which NCCL over EFA does not use.
  efa_count = local.type_facts.efa_supported ? min(
    coalesce(local.type_facts.efa_maximum_interfaces, 0),
    coalesce(local.type_facts.maximum_network_cards, 1),
  ) : 0
  # EFA interfaces are made by EC2 at launch from the launch template (network.tf) and deleted with
  # their instance; AWS assigns no automatic public IPv4 to an instance with several interfaces (nor
  # to an EFA one given at launch), so those nodes get an EIP.
  use_eip = local.efa_count > 0

  # A targeted capacity reservation (or Capacity Block) places the instances itself: a cluster
  # placement group of the module's own conflicts with it (variables.tf refuses placement_group = true).
  placement_group = var.capacity_reservation_id == null && (
    var.placement_group != null ? var.placement_group
    : contains(local.type_facts.supported_placement_strategies, "cluster")
  )
}

resource "aws_key_pair" "cluster" {
  key_name   = local.name_prefix
  public_key = trimspace(file(var.public_key_file))
}

resource "aws_placement_group" "cluster" {
  count    = local.placement_group ? 1 : 0
  name     = local.name_prefix
  strategy = "cluster"
}
