output "nodes" {
  description = "Nodes ordered by rank: name, rank, instance_id, availability_zone, public_ip, private_ip, ssh_user."
  value = [
    for rank, node in aws_instance.node : {
      name              = node.tags["Name"]
      rank              = rank
      instance_id       = node.id
      availability_zone = node.availability_zone
      public_ip         = local.use_eip ? aws_eip.node[rank].public_ip : node.public_ip
      private_ip        = node.private_ip
      ssh_user          = var.ssh_user
    }
  ]
}

output "master_addr" {
  description = "Private IP of rank 0: MASTER_ADDR on every node, rank 0 included."
  value       = aws_instance.node[0].private_ip
}

output "security_group_id" {
  description = "The cluster's security group."
  value       = aws_security_group.cluster.id
}

output "gpu_count" {
  description = "GPUs per node (instance-type data)."
  value       = local.gpu_count
}

output "gpu_memory_mib" {
  description = "Memory of each GPU in MiB (instance-type data); a node has gpu_count such GPUs."
  value       = local.gpu_memory_mib
}

output "efa_interfaces_per_node" {
  description = "EFA interfaces attached to each node (0 when the type has no EFA)."
  value       = local.efa_count
}

output "placement_group" {
  description = "Name of the cluster placement group, or null when the nodes are not in one."
  value       = local.placement_group ? aws_placement_group.cluster[0].name : null
}

output "key_name" {
  description = "EC2 key pair of the nodes."
  value       = aws_key_pair.cluster.key_name
}

output "instance_profile_name" {
  description = "Instance profile of every node: the one made for s3_read/s3_write, the given instance_profile, or null (no AWS credentials on the nodes)."
  value       = local.instance_profile
}

output "instance_profile_arn" {
  description = "ARN of instance_profile_name, or null."
  value = (
    local.s3_access ? aws_iam_instance_profile.node[0].arn
    : one(data.aws_iam_instance_profile.given[*].arn)
  )
}

output "shared_fs" {
  description = "The shared file system: null without one, else {type = \"efs\", address = its DNS name (what nodes mount), id}."
  value = var.shared_fs == "efs" ? {
    type    = "efs"
    address = aws_efs_file_system.shared[0].dns_name
    id      = aws_efs_file_system.shared[0].id
  } : null
  # The DNS name resolves inside the VPC only once the mount target is available: whoever reads this output
  # (the inventory, then the mount on the nodes) comes after the mount target.
  depends_on = [aws_efs_mount_target.shared]
}
