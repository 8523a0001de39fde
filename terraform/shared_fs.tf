# Optional shared file system (shared_fs = "efs"): one Amazon EFS file system with one mount target in the
# cluster's subnet. Nodes mount it at /shared (roles/node_storage) and keep the hub cache there
# (MODELSCOPE_CACHE / HF_HOME): multi-node Megatron needs every node to see the same cache.
#
# Network: the mount target sits in the cluster's own security group (network.tf), whose self-referencing
# all-traffic rules (ingress self_all, egress self_all) already let members reach NFS (tcp/2049) on each other.
# No rule opens 2049 to anything outside the group: the file system is reachable from the cluster's nodes only.

resource "aws_efs_file_system" "shared" {
  #checkov:skip=CKV_AWS_184: encrypted at rest with the AWS-managed EFS key; a per-cluster CMK would outlive the cluster (KMS deletes keys after a 7-30 day wait) and bill for a re-downloadable cache

  # var.shared_fs itself, not a local: checkov resolves a variable given in a var file, not one behind a local
  # (with the default "none" it leaves the resource out of its scan either way).
  count = var.shared_fs == "efs" ? 1 : 0

  # One token per cluster: a retried CreateFileSystem returns the same file system instead of a second one,
  # and a file system left over from an earlier cluster of this name is an error instead of a silent twin.
  creation_token   = "${local.name_prefix}-shared"
  encrypted        = true
  performance_mode = "generalPurpose"
  # Elastic: throughput follows the load (a whole cluster reading the cache at job start), billed per GB
  # moved; bursting would throttle a small, new file system whose credits depend on the GB it stores.
  throughput_mode = "elastic"

  # Lifecycle: nodes live at most ttl_hours (<= 168 h, 7 days), but the file system stays until `cluster down`.
  # Files unread for 7 days are then mostly a cluster whose nodes ended: Infrequent Access stores them for a
  # fraction of the price, and the first read moves a file back to Standard (no repeated IA read charges).
  lifecycle_policy {
    transition_to_ia = "AFTER_7_DAYS"
  }
  lifecycle_policy {
    transition_to_primary_storage_class = "AFTER_1_ACCESS"
  }

  # Backup: none, on purpose. The EFS API leaves automatic backups off unless asked (no aws_efs_backup_policy
  # here): the file system holds a cache the hubs serve again, `cluster down` deletes it with the cluster, and
  # AWS Backup recovery points would outlive the cluster and keep billing. Results belong in S3 (s3_write).

  tags = { Name = "${var.cluster_name}-shared" }
}

# One mount target: the cluster lives in one subnet (one AZ). The provider waits until it is available;
# its DNS name resolves inside the VPC only from then on, so outputs.tf's shared_fs waits for it.
resource "aws_efs_mount_target" "shared" {
  count = var.shared_fs == "efs" ? 1 : 0

  file_system_id  = aws_efs_file_system.shared[0].id
  subnet_id       = data.aws_subnet.node.id
  security_groups = [aws_security_group.cluster.id]
}
