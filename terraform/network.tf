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

resource "aws_network_interface" "efa" {
  for_each = local.efa_interfaces

  subnet_id       = data.aws_subnet.node.id
  security_groups = [aws_security_group.cluster.id]
  interface_type  = each.value.card == 0 ? "efa" : "efa-only"
  description     = "${var.cluster_name} node${each.value.rank} network card ${each.value.card}"

  tags = {
    Name              = "${var.cluster_name}-node${each.value.rank}-card${each.value.card}"
    "swiftfleet:rank" = tostring(each.value.rank)
  }
}

resource "aws_eip" "node" {
  count = local.use_eip ? var.node_count : 0

  domain            = "vpc"
  network_interface = aws_network_interface.efa["${count.index}-0"].id

  tags = {
    Name              = "${var.cluster_name}-node${count.index}"
    "swiftfleet:rank" = tostring(count.index)
  }

  # The interface is only reachable once attached to its running instance.
  depends_on = [aws_instance.node]
}
