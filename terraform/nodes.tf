resource "aws_instance" "node" {
  count = var.node_count

  #checkov:skip=CKV_AWS_88: the admin reaches nodes over SSH; port 22 is open to admin_cidrs only

  ami               = local.ami_id
  instance_type     = var.instance_type
  availability_zone = var.availability_zone
  key_name          = aws_key_pair.cluster.key_name
  # null unless the cluster file asks for S3 access (iam.tf): by default nodes call no AWS API, and a
  # profile would only widen what a leaked node can do. (checkov's CKV2_AWS_41 sees the attribute's
  # reference to the made profile and passes; it cannot tell that the default attaches none.)
  iam_instance_profile = local.instance_profile
  placement_group      = local.placement_group ? aws_placement_group.cluster[0].name : null
  ebs_optimized        = true
  monitoring           = true

  # Without EFA the instance makes its own single interface with an automatic public IPv4;
  # with EFA the launch template (network.tf) has EC2 make the interfaces, carrying subnet and
  # security group (and an EIP), and delete them with the node.
  subnet_id                   = local.efa_count == 0 ? data.aws_subnet.node.id : null
  vpc_security_group_ids      = local.efa_count == 0 ? [aws_security_group.cluster.id] : null
  associate_public_ip_address = local.efa_count == 0 ? true : null

  dynamic "launch_template" {
    for_each = aws_launch_template.efa
    content {
      id      = launch_template.value.id
      version = launch_template.value.latest_version
    }
  }

  # Spot, or a Capacity Block for ML (variables.tf refuses both together).
  dynamic "instance_market_options" {
    for_each = var.spot || var.capacity_block ? [1] : []
    content {
      market_type = var.capacity_block ? "capacity-block" : "spot"
      dynamic "spot_options" {
        for_each = var.spot ? [1] : []
        content {
          spot_instance_type             = "one-time"
          instance_interruption_behavior = "terminate"
        }
      }
    }
  }

  # Launch into the named reservation only (targeted): no open capacity when it is full.
  dynamic "capacity_reservation_specification" {
    for_each = var.capacity_reservation_id == null ? [] : [1]
    content {
      capacity_reservation_target {
        capacity_reservation_id = var.capacity_reservation_id
      }
    }
  }

  # The TTL timer powers the node off; "terminate" turns that into the end of billing.
  instance_initiated_shutdown_behavior = "terminate"
  user_data = templatefile("${path.module}/templates/ttl.cloud-config.tftpl", {
    ttl_hours = var.ttl_hours
  })

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gib
    encrypted             = true
    delete_on_termination = true
    tags = merge(var.tags, {
      Name                 = "${var.cluster_name}-node${count.index}"
      "swiftfleet:cluster" = var.cluster_name
    })
  }

  tags = {
    Name                 = "${var.cluster_name}-node${count.index}"
    "swiftfleet:cluster" = var.cluster_name
    "swiftfleet:rank"    = tostring(count.index)
  }

  lifecycle {
    # A new DLAMI release changes the SSM value; it must not replace running nodes. The TTL is
    # fixed at first boot (extend it on the node: /etc/swiftfleet/ttl-deadline).
    ignore_changes = [ami, user_data]

    precondition {
      condition     = data.aws_subnet.node.availability_zone == var.availability_zone
      error_message = "subnet_id lies in ${data.aws_subnet.node.availability_zone}, not in availability_zone ${var.availability_zone}."
    }
  }
}
