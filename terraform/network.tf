# One security group for the whole cluster. NCCL bootstrap/socket transport and gloo use random
# ephemeral ports and EFA traffic is not TCP at all, so nodes need all traffic to and from the
# group itself; the explicit rendezvous rule documents MASTER_PORT and survives a narrowed group.
resource "aws_security_group" "cluster" {
  name        = local.name_prefix
  description = "swiftfleet cluster ${var.cluster_name}: SSH from admins, all traffic between nodes"
  vpc_id      = data.aws_subnet.node.vpc_id

  tags = { Name = local.name_prefix }
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "SSH from admin CIDR ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "rendezvous" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "torchrun rendezvous (MASTER_PORT 29500) between nodes"
  ip_protocol                  = "tcp"
  from_port                    = 29500
  to_port                      = 29600
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "self_all" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "All traffic between nodes (NCCL ephemeral ports, EFA)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_egress_rule" "self_all" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "All traffic to other nodes (EFA requires self egress)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  #checkov:skip=CKV_AWS_382: nodes install packages and fetch models from public hubs and registries
  security_group_id = aws_security_group.cluster.id
  description       = "Outbound to the internet (packages, model hubs)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "deploy" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "Inference endpoint (swift deploy) from client CIDR ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.deploy_port
  to_port           = var.deploy_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

# The EFA interfaces of every node: one per network card, card 0 "efa" (EFA + ENA: the node's IP
# address), every other card "efa-only". EC2 creates them when it launches the node from this template
# and deletes them when the node terminates (delete_on_termination). They used to be pre-made
# aws_network_interface resources, but EC2 accepts delete_on_termination = true only for interfaces it
# creates at launch, so pre-made ones outlived every terminated node (TTL, idle stop, spot) and waited
# for the sweep at `cluster down`; a node that Terraform replaces now also gets fresh interfaces.
resource "aws_launch_template" "efa" {
  #checkov:skip=CKV_AWS_79: IMDSv2 is required by aws_instance.node's own metadata_options, which RunInstances applies over this template (it carries only the interfaces)
  count = local.efa_count > 0 ? 1 : 0

  name        = "${local.name_prefix}-efa"
  description = "swiftfleet cluster ${var.cluster_name}: EFA interfaces made at launch, deleted with the node"

  dynamic "network_interfaces" {
    for_each = range(local.efa_count)
    content {
      network_card_index = network_interfaces.value
      # AWS: device index 0 on card 0 (the primary interface), device index 1 on every other card.
      device_index          = network_interfaces.value == 0 ? 0 : 1
      interface_type        = network_interfaces.value == 0 ? "efa" : "efa-only"
      subnet_id             = data.aws_subnet.node.id
      security_groups       = [aws_security_group.cluster.id]
      delete_on_termination = true
      description           = "${var.cluster_name} network card ${network_interfaces.value}"
    }
  }

  # Provider default_tags do not reach what EC2 creates at launch: the sweep finds these by the tag.
  tag_specifications {
    resource_type = "network-interface"
    tags = merge(var.tags, {
      Name                 = "${var.cluster_name}-efa"
      "swiftfleet:cluster" = var.cluster_name
    })
  }
}

resource "aws_eip" "node" {
  count = local.use_eip ? var.node_count : 0

  domain = "vpc"
  # The primary (card 0) interface EC2 made for the node: the EIP follows a replaced node to its new one.
  network_interface = aws_instance.node[count.index].primary_network_interface_id

  tags = {
    Name              = "${var.cluster_name}-node${count.index}"
    "swiftfleet:rank" = tostring(count.index)
  }
}
